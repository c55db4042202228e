"""`sitewatch evidence verify ENGINEER_ID`: recompute an engineer's evidence chain and name the
first broken entry.

By default it asks the running stack (``DATA_DIR/endpoints.json`` and ``DATA_DIR/admin.token``,
``GET /api/engineers/{id}/evidence/verify``). With ``--db`` it reads PostGIS directly
(``--database-url``, else ``SITEWATCH_DATABASE_URL``, else the ``database`` of
``endpoints.json``) and recomputes the chain in this process, so the check does not depend on
the API. Either way the chain is also checked against the seals (docs/evidence.md): with
``--db`` those in ``--seals`` (default: the seal directory of the data directory), verified
with ``--seal-public-key`` (default: the key of the seal key file). Exit status: 0 intact,
1 broken, 2 could not check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


def add_parser(sub: Any) -> None:
    evidence = sub.add_parser("evidence", help="engineers' evidence chains")
    esub = evidence.add_subparsers(dest="action", required=True)
    v = esub.add_parser("verify", help="recompute a chain and report the first broken entry")
    v.add_argument("engineer_id")
    v.add_argument("--data-dir", type=Path, default=Path("./sitewatch-data"))
    v.add_argument("--db", action="store_true", help="read the database directly")
    v.add_argument("--database-url", default=None, help="postgresql://... (implies --db)")
    v.add_argument("--json", action="store_true", help="print the result as one JSON object")
    v.add_argument("--seals", type=Path, default=None, help="seal directory (with --db)")
    v.add_argument(
        "--seal-public-key", default=None, help="hex SM2 key the seals must verify with (--db)"
    )


def run(args: argparse.Namespace) -> int:
    try:
        if args.db or args.database_url:
            result = _verify_db(args, _database_url(args))
        else:
            result = _verify_http(args.engineer_id, args.data_dir)
    except _Unavailable as exc:
        print(f"cannot verify: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(describe(result))
    return 0 if result.get("ok") else 1


def describe(result: dict[str, Any]) -> str:
    who = result.get("engineer_id")
    seals = result.get("seals") or {}
    sealed = (
        f"; {seals.get('sealed_entries', 0)} sealed entries checked"
        if "sealed_entries" in seals
        else ""
    )
    if seals.get("rejected_files"):
        sealed += f"; seal files NOT trusted: {'; '.join(seals['rejected_files'])}"
    if result.get("ok"):
        return (
            f"evidence chain of {who}: intact, {result.get('entries')} entries, "
            f"head {result.get('head')}{sealed}"
        )
    broken = result.get("broken") or {}
    what = f" ({broken.get('kind')} {broken.get('msg_id')})" if broken.get("msg_id") else ""
    return (
        f"evidence chain of {who}: BROKEN at entry {result.get('broken_at')}{what}: "
        f"{broken.get('reason')}: {broken.get('message')} "
        f"[{result.get('verified')} of {result.get('entries')} entries verified{sealed}]"
    )


class _Unavailable(Exception):
    pass


def _endpoints(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "endpoints.json"
    if not path.exists():
        raise _Unavailable(f"no {path}: start `sitewatch up --data-dir {data_dir}` first")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def _database_url(args: argparse.Namespace) -> str:
    url = args.database_url or os.environ.get("SITEWATCH_DATABASE_URL")
    if url:
        return str(url)
    return str(_endpoints(args.data_dir)["database"])


def _verify_http(engineer_id: str, data_dir: Path) -> dict[str, Any]:
    endpoints = _endpoints(data_dir)
    token_file = data_dir / "admin.token"
    if not token_file.exists():
        raise _Unavailable(f"no {token_file}")
    token = token_file.read_text().strip()
    url = (
        endpoints["http"].rstrip("/")
        + f"/api/engineers/{urllib.parse.quote(engineer_id, safe='')}/evidence/verify"
    )
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            return json.loads(resp.read())  # type: ignore[no-any-return]
    except urllib.error.HTTPError as exc:
        body = exc.read().decode(errors="replace")
        try:
            detail = json.loads(body).get("detail", body)
        except ValueError:
            detail = body
        raise _Unavailable(f"{exc.code}: {detail}") from exc
    except OSError as exc:
        raise _Unavailable(f"{url}: {exc}") from exc


def _verify_db(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    from sqlalchemy import select

    from attachments.files import FileStore
    from config.settings import Settings
    from store import evidence
    from store import seals as seal_store
    from store.db import async_engine
    from store.models import Engineer

    engineer_id = args.engineer_id
    settings = Settings(database_url=database_url, data_dir=args.data_dir)
    key = seal_store.seal_key(settings, make=False)
    public_key = args.seal_public_key or (key.public_hex if key else None)
    seals, problems = (
        seal_store.load_seals(args.seals or seal_store.seal_dir(settings), public_key)
        if public_key
        else ([], [])
    )

    async def check() -> dict[str, Any]:
        engine = async_engine(settings, pool_size=1)
        try:
            async with engine.connect() as conn:
                await evidence.one_snapshot(conn)
                known = (
                    await conn.execute(select(Engineer.id).where(Engineer.id == engineer_id))
                ).first()
                if known is None:
                    raise _Unavailable(f"no engineer {engineer_id!r}")
                result = await evidence.verify(
                    conn,
                    engineer_id,
                    retention_days=settings.retention_days,
                    seals=seals,
                    file_digest=FileStore.of(settings.data_dir).digest_of,
                )
                out = result.as_dict()
                if problems:
                    out["seals"] = {**dict(result.seals or {}), "rejected_files": problems[:20]}
                return out
        except _Unavailable:
            raise
        except Exception as exc:  # connection refused, missing tables ...
            raise _Unavailable(f"database {database_url.split('@')[-1]}: {exc}") from exc
        finally:
            await engine.dispose()

    return asyncio.run(check())
