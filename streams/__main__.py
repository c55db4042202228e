"""`python -m streams worker [-l info]`: run the Faust worker with settings from the env."""

from __future__ import annotations

import sys

from config import gc_tuning
from config.settings import Settings
from streams.worker import build_app


def main() -> None:
    app = build_app(Settings())
    gc_tuning.tune()
    sys.argv = [sys.argv[0], *(sys.argv[1:] or ["worker", "-l", "info"]), "--without-web"]
    app.main()


if __name__ == "__main__":
    main()
