"""Which records of a batch are chained already (store.evidence._known): the batch's fixes are
judged by what their insert into `fixes` said, in the same transaction; only the others are
looked up in `evidence_entries`."""

from __future__ import annotations

import asyncio
import math
from types import SimpleNamespace
from typing import Any

from rules.evidence_chain import Candidate
from store.evidence import FixesWritten, _known, kept_after


class LookUps:
    """A connection that answers the look-up from `chained` and records what it was asked."""

    def __init__(self, chained: set[tuple[str, str, str]]) -> None:
        self.chained = chained
        self.asked: list[tuple[str, str, str]] = []

    async def execute(self, _sql: Any, params: dict[str, list[str]]) -> list[Any]:
        asked = list(zip(params["e"], params["k"], params["m"], strict=True))
        self.asked.extend(asked)
        return [
            SimpleNamespace(engineer_id=e, kind=k, msg_id=m)
            for e, k, m in asked
            if (e, k, m) in self.chained
        ]


def cand(kind: str, msg_id: str, ts: float) -> Candidate:
    return Candidate("E1", kind, msg_id, ts, b"{}")


def test_fixes_are_judged_by_their_insert_and_the_rest_looked_up() -> None:
    now = 2_000_000_000.0
    cands = [
        cand("fix", "old-row", now),  # its row was there: chained with it
        cand("fix", "new-row", now),  # inserted now, recent: never chained
        cand("fix", "trimmed", now - 400.5 * 86400),  # inserted now, but retention may have
        cand("fix", "not-given", now),  # trimmed an earlier row; not given to the insert
        cand("log", "new-row", now),  # logs are always looked up
    ]
    written = FixesWritten(
        tried={("E1", "old-row"), ("E1", "new-row"), ("E1", "trimmed")},
        new={("E1", "new-row"), ("E1", "trimmed")},
        kept_after=kept_after(400, now),
    )
    conn = LookUps(chained={("E1", "fix", "trimmed"), ("E1", "log", "new-row")})
    known = asyncio.run(_known(conn, cands, written))  # type: ignore[arg-type]
    assert known == {("E1", "fix", "old-row"), ("E1", "fix", "trimmed"), ("E1", "log", "new-row")}
    assert conn.asked == [
        ("E1", "fix", "trimmed"),
        ("E1", "fix", "not-given"),
        ("E1", "log", "new-row"),
    ]


def test_without_what_the_insert_said_everything_is_looked_up() -> None:
    cands = [cand("fix", "a", 1.0), cand("fix", "b", 2.0)]
    conn = LookUps(chained={("E1", "fix", "b")})
    assert asyncio.run(_known(conn, cands, None)) == {("E1", "fix", "b")}  # type: ignore[arg-type]
    assert len(conn.asked) == 2


def test_with_nothing_trimmed_every_new_fix_is_new() -> None:
    assert kept_after(0, 2_000_000_000.0) == -math.inf
    now = 2_000_000_000.0
    # retention trims fixes older than 400 days: only those newer than 399 days are trusted
    assert kept_after(400, now) == now - 399 * 86400
    assert kept_after(1, now) == now
    written = FixesWritten(tried={("E1", "a")}, new={("E1", "a")}, kept_after=kept_after(0, 0.0))
    conn = LookUps(chained=set())
    assert asyncio.run(_known(conn, [cand("fix", "a", -1e9)], written)) == set()  # type: ignore[arg-type]
    assert conn.asked == []
