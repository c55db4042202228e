"""`sitewatch regions import FILE`: load boundaries into a running stack through its API."""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode


def import_file(path: Path, data_dir: Path, code_prop: str | None, name_prop: str | None) -> int:
    endpoints_file = data_dir / "endpoints.json"
    if not endpoints_file.exists():
        print(
            f"no {endpoints_file}: start `sitewatch up --data-dir {data_dir}` first",
            file=sys.stderr,
        )
        return 2
    if not path.exists():
        print(f"no such file: {path}", file=sys.stderr)
        return 2
    endpoints = json.loads(endpoints_file.read_text())
    token = (data_dir / "admin.token").read_text().strip()
    query = urlencode(
        {k: v for k, v in {"code_prop": code_prop, "name_prop": name_prop}.items() if v}
    )
    body = path.read_bytes()
    print(f"importing {path} ({len(body) / 1e6:.1f} MB) ...", file=sys.stderr)
    started = time.monotonic()
    req = urllib.request.Request(
        endpoints["http"] + "/api/regions/import" + (f"?{query}" if query else ""),
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/geo+json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=600) as resp:
            result = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        print(
            f"import refused ({exc.code}): {exc.read().decode(errors='replace')}", file=sys.stderr
        )
        return 1
    print(
        f"imported {result['imported']} regions, skipped {result['skipped']} in {time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )
    for reason in result.get("skipped_reasons", [])[:10]:
        print(f"  skipped: {reason}", file=sys.stderr)
    return 0
