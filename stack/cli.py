"""The `sitewatch` command line (CONTRACT section 1)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path


def _up_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir",
        type=Path,
        default=Path("./sitewatch-data"),
        help="where services keep their data",
    )
    p.add_argument("--http-port", type=int, default=None)
    p.add_argument("--mqtt-port", type=int, default=None)
    p.add_argument("--kafka-port", type=int, default=None)
    p.add_argument("--workers", type=int, default=1, help="number of stream worker processes")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sitewatch", description="SiteWatch supervision monitor")
    sub = parser.add_subparsers(dest="command", required=True)
    _up_args(sub.add_parser("up", help="start the whole stack in the foreground"))
    demo = sub.add_parser("demo", help="up + demo data + a live simulated scenario")
    _up_args(demo)
    demo.add_argument("--engineers", type=int, default=12)
    bench = sub.add_parser("bench", help="run the performance benchmark")
    bench.add_argument("--json", action="store_true", help="one JSON object on the last line")
    bench.add_argument("--quick", action="store_true", help="smaller seed and load (a smoke run)")
    bench.add_argument("--workers", type=int, default=1, help="stream worker processes")
    bench.add_argument(
        "--only-e2e", action="store_true", help="skip the ceilings and component figures"
    )
    bench.add_argument("--rates", help="offered fixes/s of the rising load, comma-separated")
    bench.add_argument(
        "--signed-share",
        type=float,
        default=1.0,
        help="share of engineers whose fixes are SM2-signed (1 = every fix; the rest are sent "
        "unsigned by the service identity)",
    )
    bench.add_argument(
        "--write", default=None, help="also write the results into this Markdown file"
    )
    regions = sub.add_parser("regions", help="administrative boundaries")
    rsub = regions.add_subparsers(dest="action", required=True)
    imp = rsub.add_parser("import", help="load a GeoJSON FeatureCollection of boundaries")
    imp.add_argument("file", type=Path)
    imp.add_argument("--data-dir", type=Path, default=Path("./sitewatch-data"))
    imp.add_argument("--code-prop", default=None)
    imp.add_argument("--name-prop", default=None)
    from stack import evidence_cli

    evidence_cli.add_parser(sub)
    from simulators import cli as simulators_cli

    simulators_cli.add_parsers(sub)  # simulate, replay, score
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )

    if args.command == "up":
        from stack.up import StackOptions, run_up

        return run_up(
            StackOptions(
                args.data_dir, args.http_port, args.mqtt_port, args.kafka_port, args.workers
            )
        )
    if args.command == "demo":
        from simulators.demo import run_demo

        return run_demo(args)
    if args.command == "bench":
        from stack.bench import main as bench_main

        return bench_main(args)
    if args.command == "regions":
        from stack.regions_cli import import_file

        return import_file(args.file, args.data_dir, args.code_prop, args.name_prop)
    if args.command == "evidence":
        return evidence_cli.run(args)
    if args.command in simulators_cli.COMMANDS:
        return simulators_cli.run(args) or 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
