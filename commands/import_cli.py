"""`sitewatch import {engineers,projects,filings} FILE [--dry-run]`: a CSV or XLSX file into a running
stack, through `POST /api/import/...` in parts of `--chunk` rows with a progress bar. Errors
name the row of FILE (the header is row 1)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from live_api import table_files
from simulators.publish import Progress

KINDS = ("engineers", "projects", "filings")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("import", help="import engineers, projects or filings from CSV or XLSX")
    p.add_argument("kind", choices=KINDS)
    p.add_argument("file", type=Path)
    p.add_argument("--dry-run", action="store_true", help="check every row, write nothing")
    p.add_argument("--data-dir", type=Path, default=Path("./sitewatch-data"))
    p.add_argument("--chunk", type=int, default=1000, help="rows per request")


def _csv(columns: tuple[str, ...], rows: list[dict[str, str | None]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for row in rows:
        writer.writerow([row.get(c) or "" for c in columns])
    return out.getvalue().encode()


def run(args: argparse.Namespace) -> int:
    endpoints_file = args.data_dir / "endpoints.json"
    if not endpoints_file.exists():
        print(
            f"no {endpoints_file}: start `sitewatch up --data-dir {args.data_dir}` first",
            file=sys.stderr,
        )
        return 2
    try:
        content = args.file.read_bytes()
        table = table_files.read_table(content, "")
    except OSError as exc:
        print(f"cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    except table_files.TableError as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 1
    url = json.loads(endpoints_file.read_text())["http"] + f"/api/import/{args.kind}"
    if args.dry_run:
        url += "?dry_run=true"
    token = (args.data_dir / "admin.token").read_text().strip()
    totals = {"created": 0, "updated": 0, "unchanged": 0}
    errors: list[dict[str, Any]] = []
    progress = Progress(len(table.rows), label=f"importing {args.kind}")
    started = time.monotonic()
    chunk = max(1, args.chunk)
    for start in range(0, len(table.rows), chunk):
        part = table.rows[start : start + chunk]
        numbers = [n for n, _ in part]
        request = urllib.request.Request(
            url,
            data=_csv(table.columns, [r for _, r in part]),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "text/csv"},
        )
        try:
            with urllib.request.urlopen(request, timeout=600) as resp:
                result = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            print(
                f"\nimport refused ({exc.code}): {exc.read().decode(errors='replace')}",
                file=sys.stderr,
            )
            return 1
        for name in totals:
            totals[name] += int(result[name])
        for e in result["errors"]:  # the part's rows are numbered from 2: back to FILE's
            errors.append({**e, "row": numbers[int(e["row"]) - 2]})
        progress.update(start + len(part), f"{len(errors)} errors")
    progress.update(len(table.rows), f"{len(errors)} errors", force=True)
    verb = "would be" if args.dry_run else "were"
    print(
        f"\n{len(table.rows)} rows in {time.monotonic() - started:.1f} s: {totals['created']} "
        f"{verb} created, {totals['updated']} updated, {totals['unchanged']} unchanged, "
        f"{len(errors)} errors",
        file=sys.stderr,
    )
    for e in errors[:50]:
        print(f"  row {e['row']}: {e['field'] or '-'}: {e['message']}", file=sys.stderr)
    if len(errors) > 50:
        print(f"  ... and {len(errors) - 50} more", file=sys.stderr)
    return 1 if errors else 0
