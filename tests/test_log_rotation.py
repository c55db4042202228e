"""Log files of the children rotate by size: copy, then truncate, so a child writing with its
descriptor opened for appending goes on writing into the fresh file."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from stack.processes import Supervisor

WRITER = "import sys, time\nfor k in range(400):\n    print('x' * 99, flush=True)\n    time.sleep(0.005)\n"


def test_logs_rotate_by_size_and_the_child_writes_on(tmp_path: Path) -> None:
    sup = Supervisor(tmp_path / "logs")
    child = sup.start("chatty", [sys.executable, "-c", WRITER])
    rotations = 0
    try:
        while child.popen.poll() is None:
            rotations += len(sup.rotate_logs(max_bytes=5_000, keep=3))
            time.sleep(0.05)
    finally:
        sup.stop_all()
    files = sorted(p.name for p in (tmp_path / "logs").iterdir())
    assert rotations >= 3
    assert files == ["chatty.log", "chatty.log.1", "chatty.log.2", "chatty.log.3"]
    for name in files[1:]:
        size = (tmp_path / "logs" / name).stat().st_size
        assert 5_000 < size < 20_000, (name, size)
    # the child wrote on at the start of each truncated file: whole lines only, never the
    # NUL bytes a writer without O_APPEND would leave in front
    lines = 0
    for name in files:
        content = (tmp_path / "logs" / name).read_bytes()
        assert content.count(b"\n") * 100 == len(content), name
        assert set(content) <= {ord("x"), ord("\n")}, name
        lines += content.count(b"\n")
    assert lines > 150  # the newest of 400 lines survive the rotations
