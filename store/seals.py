"""Seals of the evidence chains on disk and in the database (rules.evidence_seals): the
final heads to seal, the key that signs them, the files they are kept in."""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from config.secret_files import read_or_make_secret
from config.settings import Settings
from gm.algorithms import generate_sm2_keypair, public_key_from_private
from rules.evidence_seals import Seal, SealedHead, SealError, read_seal

log = logging.getLogger("sitewatch.seals")

# per engineer, the last entry before the horizon: no late record can change its hash
FINAL_HEADS_SQL = """
SELECT h.engineer_id, e.seq, e.hash FROM evidence_heads h
CROSS JOIN LATERAL (
    SELECT seq, hash FROM evidence_entries e
    WHERE e.engineer_id = h.engineer_id AND e.order_ts < h.watermark - :lateness
    ORDER BY e.order_ts DESC, e.seq DESC LIMIT 1
) e
"""


@dataclass(frozen=True)
class SealKey:
    private_hex: str
    public_hex: str


def seal_dir(settings: Settings) -> Path:
    return Path(settings.seal_dir) if settings.seal_dir else settings.data_dir / "seals"


def seal_key(settings: Settings, *, make: bool) -> SealKey | None:
    """The signing key (SITEWATCH_SEAL_KEY_FILE, else DATA_DIR/secrets/seal.key): made when
    `make` and missing; None when missing and not to be made."""
    path = (
        Path(settings.seal_key_file).expanduser()
        if settings.seal_key_file
        else settings.data_dir / "secrets" / "seal.key"
    )
    if not path.exists() and not make:
        return None
    private = read_or_make_secret(path, lambda: generate_sm2_keypair()[0])
    return SealKey(private, public_key_from_private(bytes.fromhex(private)))


async def final_heads(conn: AsyncConnection, lateness_s: float) -> list[SealedHead]:
    rows = await conn.execute(text(FINAL_HEADS_SQL), {"lateness": lateness_s})
    return [SealedHead(r.engineer_id, int(r.seq), r.hash) for r in rows]


def newest_seal_time(directory: Path) -> dt.datetime:
    """When the newest seal in `directory` was made (from its name); the epoch when none."""
    newest = max((p.name for p in directory.glob("seal-*.json")), default="")
    try:
        found = dt.datetime.strptime(newest[5:21], "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return dt.datetime.fromtimestamp(0, dt.UTC)
    return min(found, dt.datetime.now(dt.UTC))  # a name from the future moves nothing


def write_seal(directory: Path, seal: dict[str, Any]) -> Path:
    """One file per seal, written whole (a temporary name, then renamed), never over another."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(seal["sealed_at"]))
    n = int(seal["sealed_at"] * 1000) % 1000
    path = directory / f"seal-{stamp}-{n:03d}.json"
    while path.exists():
        n += 1
        path = directory / f"seal-{stamp}-{n:03d}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(seal, ensure_ascii=False))
    tmp.replace(path)
    (directory / "public-key.hex").write_text(seal["public_key"] + "\n")
    return path


def load_seals(directory: Path, public_key: str) -> tuple[list[Seal], list[str]]:
    """Every seal signed by `public_key`, and a sentence for each file that is not one (a
    forged or altered seal is reported, never trusted). A file already read and unchanged
    (same size and mtime) is not verified again."""
    seals: list[Seal] = []
    problems: list[str] = []
    for path in sorted(directory.glob("seal-*.json")) if directory.exists() else []:
        try:
            stat = path.stat()
            key = (str(path), stat.st_size, stat.st_mtime_ns, public_key)
            seal = _verified.get(key)
            if seal is None:
                seal = read_seal(json.loads(path.read_bytes()), public_key)
                _verified[key] = seal
            seals.append(seal)
        except (SealError, ValueError, OSError) as exc:
            problems.append(f"{path.name}: {exc}")
    return seals, problems


_verified: dict[tuple[str, int, int, str], Seal] = {}


def trusted_seals(settings: Settings) -> tuple[list[Seal], list[str]]:
    """The seals of this deployment's seal directory that its seal key signed (none without a
    key), and the files that are not such seals."""
    key = seal_key(settings, make=False)
    if key is None:
        return [], []
    return load_seals(seal_dir(settings), key.public_hex)
