"""The `sitewatch` command line (CONTRACT section 1)."""

from __future__ import annotations

import argparse
import logging
import os
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
    p.add_argument(
        "--listen",
        metavar="ADDR",
        default=None,
        help="also serve phones on ADDR: HTTPS and MQTT over TLS (without --tls-cert/--tls-key "
        "a private CA is made: DATA_DIR/secrets/ca.pem is what phones trust); the plain "
        "listeners stay on 127.0.0.1",
    )
    p.add_argument("--tls-cert", metavar="FILE", default=None, help="with --listen: PEM chain")
    p.add_argument("--tls-key", metavar="FILE", default=None, help="with --listen: PEM key")
    p.add_argument("--https-port", type=int, default=None, help="with --listen (default: free)")
    p.add_argument("--mqtts-port", type=int, default=None, help="with --listen (default: free)")


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["bench"]:
        bench = [sys.executable, "-m", "measure.bench", *args_in[1:]]
        os.execv(sys.executable, bench)
    parser = argparse.ArgumentParser(prog="sitewatch", description="SiteWatch supervision monitor")
    sub = parser.add_subparsers(dest="command", required=True)
    _up_args(sub.add_parser("up", help="start the whole stack in the foreground"))
    demo = sub.add_parser("demo", help="up + demo data + a live simulated scenario")
    _up_args(demo)
    demo.add_argument("--engineers", type=int, default=12)
    # measure/ sits outside the product's imports: `sitewatch bench` runs it as its own program
    sub.add_parser("bench", help="run the performance benchmark (see sitewatch bench --help)")
    regions = sub.add_parser("regions", help="administrative boundaries")
    rsub = regions.add_subparsers(dest="action", required=True)
    imp = rsub.add_parser("import", help="load a GeoJSON FeatureCollection of boundaries")
    imp.add_argument("file", type=Path)
    imp.add_argument("--data-dir", type=Path, default=Path("./sitewatch-data"))
    imp.add_argument("--code-prop", default=None)
    imp.add_argument("--name-prop", default=None)
    from commands import evidence_cli

    evidence_cli.add_parser(sub)
    from commands import import_cli

    import_cli.add_parser(sub)
    from simulators import cli as simulators_cli

    simulators_cli.add_parsers(sub)  # simulate, replay, score
    args = parser.parse_args(args_in)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # a line per HTTP request of the commands' own clients (the demo's seeding) is noise
    logging.getLogger("httpx").setLevel(logging.WARNING)

    if args.command == "up":
        from stack.up import StackOptions, run_up

        return run_up(StackOptions.from_args(args))
    if args.command == "demo":
        from simulators.demo import run_demo

        return run_demo(args)
    if args.command == "regions":
        from commands.regions_cli import import_file

        return import_file(args.file, args.data_dir, args.code_prop, args.name_prop)
    if args.command == "evidence":
        return evidence_cli.run(args)
    if args.command == "import":
        return import_cli.run(args)
    if args.command in simulators_cli.COMMANDS:
        return simulators_cli.run(args) or 0
    parser.error(f"unknown command {args.command}")
    return 2


if __name__ == "__main__":
    sys.exit(main())
