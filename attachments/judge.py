"""`python -m attachments.judge TIMEZONE MEMORY_MIB CPU_S`: judge one file read from stdin
(attachments.checks) in a process of its own, under a memory and CPU limit, and print the
verdict as JSON:
`{"type", "taken_at", "position"}` or `{"bad": reason}`. Run by attachments.sandbox."""

from __future__ import annotations

import json
import resource
import sys
from zoneinfo import ZoneInfo


def main() -> int:
    memory = int(sys.argv[2]) * 1024 * 1024
    cpu_s = int(sys.argv[3])
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    from attachments.checks import BadFile, check_file  # after the limits: they cover it

    data = sys.stdin.buffer.read()
    try:
        checked = check_file(data, tz=ZoneInfo(sys.argv[1]))
    except BadFile as why:
        verdict: dict[str, object] = {"bad": str(why)}
    except MemoryError:
        verdict = {"bad": f"judging it needs more than {memory >> 20} MiB"}
    else:
        verdict = {"type": checked.type, "taken_at": checked.taken_at, "position": checked.position}
    sys.stdout.write(json.dumps(verdict))
    return 0


if __name__ == "__main__":
    sys.exit(main())
