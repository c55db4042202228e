"""Dead letters of the agents, kept in the rejected log (`GET /api/ingest/rejected`, reason
`internal_error`, source `worker`) with the exception and the whole record, so nothing accepted
is lost: the record can be sent again once the cause is fixed. Also the rows of the dead letters
the gate sends to `rejected.v1`."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy.ext.asyncio import AsyncEngine

from store.models import RejectedMessage
from store.retry import is_transient, pg_text
from streams import sinks
from streams.rejected_log import tally_and_sample
from wire.records import Record, to_json

log = logging.getLogger("sitewatch.streams")


def dead_letter_rows(
    what: str, records: Sequence[Record], events: Sequence[Any], exc: BaseException
) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    first_line = str(exc).splitlines()[0] if str(exc) else ""
    rows = []
    for record, event in zip(records, events, strict=True):
        body = to_json(record).decode("utf-8", "replace")
        where = f"{event.message.tp.topic}/{event.message.tp.partition}@{event.message.offset}"
        # one id per record and place in the log: a redelivered batch keeps one dead letter
        ident = hashlib.sha256(f"{where}\x00{body}".encode("utf-8", "replace")).hexdigest()[:32]
        rows.append(
            {
                "id": ident,
                "source": "worker",
                "topic": pg_text(where),
                "reason": "internal_error",
                "message": pg_text(f"{what} failed: {type(exc).__name__}: {first_line}"[:1000]),
                "excerpt": pg_text(body),
                "received_at": now,
            }
        )
    return rows


async def keep(
    engine: AsyncEngine,
    what: str,
    records: Sequence[Record],
    events: Sequence[Any],
    exc: BaseException,
) -> None:
    """Store the dead letters; when even that fails on their data, log them whole."""
    rows = dead_letter_rows(what, records, events, exc)
    try:
        async with engine.begin() as conn:
            await tally_and_sample(conn, rows, 0)  # the worker's own are always kept
            await sinks.insert_new(conn, RejectedMessage, rows)
    except Exception as store_exc:
        if is_transient(store_exc):
            raise  # the batch is written again once the database is back
        log.critical("dead letters could not be stored, here they are: %s", rows, exc_info=True)


def rejection_rows(events: Sequence[Any]) -> list[dict[str, Any]]:
    """The gate's dead letters (`rejected.v1`) as rows; an undecodable one is logged."""
    rows = []
    for e in events:
        try:
            d = orjson.loads(e.value)
            d["received_at"] = dt.datetime.fromtimestamp(float(d["received_at"]), dt.UTC)
            for key in ("topic", "message", "excerpt"):
                d[key] = pg_text(str(d.get(key, "")))
            d["id"] = str(d["id"])[:64]
            rows.append(d)
        except (ValueError, TypeError, KeyError, OverflowError) as exc:
            log.error("skipping an undecodable rejection at %s: %s", e.message.tp, exc)
    return rows
