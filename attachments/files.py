"""Files kept by their SM3 under the data directory (`files/ab/abcdef...`): written once,
atomically (a temporary name, then a rename), never changed. The evidence chain holds each
file's SM3, so a stored file that no longer hashes to its name has been altered."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from gm.algorithms import sm3_hex


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    @classmethod
    def of(cls, data_dir: Path) -> FileStore:
        """The store of a SiteWatch data directory."""
        return cls(data_dir / "files")

    def path_of(self, sm3: str) -> Path:
        return self.root / sm3[:2] / sm3

    def put(self, data: bytes) -> str:
        """Keep the bytes; returns their SM3 (a file already there is left as it is)."""
        sm3 = sm3_hex(data)
        path = self.path_of(sm3)
        if path.exists():
            return sm3
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sm3

    def read(self, sm3: str) -> bytes | None:
        try:
            return self.path_of(sm3).read_bytes()
        except FileNotFoundError:
            return None

    def digest_of(self, sm3: str) -> str | None:
        """The SM3 of what is stored under the name `sm3` now (None: nothing is)."""
        data = self.read(sm3)
        return None if data is None else sm3_hex(data)
