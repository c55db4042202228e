"""The simulator subcommands of `sitewatch`: simulate, replay, score (docs/simulators.md).

``commands.main`` calls ``add_parsers(sub)`` and hands the parsed arguments to ``run(args)``; the
heavy modules are imported only when their command runs.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from simulators.arguments import (
    COMMANDS,
    replay_arguments,
    score_arguments,
    simulate_arguments,
)


def add_parsers(sub: Any) -> None:
    simulate_arguments(
        sub.add_parser(
            "simulate",
            help="publish a seeded simulated scenario over MQTT and write its ground truth",
        )
    )
    replay_arguments(
        sub.add_parser(
            "replay", help="replay a recorded track (GPX, CSV, OwnTracks, GeoJSON) as a phone"
        )
    )
    score_arguments(
        sub.add_parser("score", help="compare what the monitor reported with a run's truth")
    )


def run(args: argparse.Namespace) -> int | None:
    """Run a simulator command; None when ``args.command`` is not one of them."""
    if args.command not in COMMANDS:
        return None
    logging.getLogger("httpx").setLevel(logging.WARNING)
    if args.command == "simulate":
        from simulators.simulate import run_simulate

        return run_simulate(args)
    if args.command == "replay":
        from simulators.replay import run_replay

        return run_replay(args)
    from simulators.score import run_score

    return run_score(args)
