"""Bulk import of engineers from XLSX, measured on a stack of its own (CONTRACT §6.3):

    python -m measure.import_bench [--engineers 10000] [--json FILE]

Writes an XLSX of `--engineers` engineers (names, regions, certificate numbers, employers with
valid credit codes, phones and id numbers, CE hours), imports it in one request, then again.
Reports the time of each, the API's resident memory before, at its highest during, and
after, and the counts: the second import must change nothing."""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import openpyxl

from measure import faults
from stack.up import Stack, StackOptions

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COLUMNS = [
    "id",
    "name",
    "registered_region",
    "cert_status",
    "cert_number",
    "employer_name",
    "employer_credit_code",
    "phone",
    "id_number",
    "ce_hours",
]
CREDIT_CODE = "91350100M000100Y43"
REGIONS = ("440305", "440304", "440106", "310104", "110105")


def workbook(count: int, run: str) -> bytes:
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(COLUMNS)
    for i in range(count):
        sheet.append(
            [
                f"{run}-{i:06d}",
                f"工程师{i}",
                REGIONS[i % len(REGIONS)],
                "valid" if i % 50 else "suspended",
                f"监{i:07d}",
                "某某工程监理有限公司",
                CREDIT_CODE,
                f"138{i:08d}",
                f"44030519900101{i % 10000:04d}",
                float(i % 40),
            ]
        )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


class PeakRss:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_kib = faults.rss_kib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak_kib = max(self.peak_kib, faults.rss_kib(self.pid))

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def measure(count: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sitewatch-import-") as tmp:
        stack = Stack(StackOptions(Path(tmp) / "data"))
        stack.start()
        try:
            api_pid = stack.components["api"].popen.pid
            content = workbook(count, f"IB{int(time.time()) % 100000}")
            headers = {"Authorization": f"Bearer {stack.admin_token}", "Content-Type": XLSX}
            url = str(stack.endpoints["http"]) + "/api/import/engineers"
            result: dict[str, Any] = {"engineers": count, "xlsx_bytes": len(content)}
            result["api_rss_mib_before"] = round(faults.rss_kib(api_pid) / 1024, 1)
            with httpx.Client(timeout=900) as client:
                for name in ("first", "again"):
                    with PeakRss(api_pid) as peak:
                        started = time.monotonic()
                        answer = client.post(url, content=content, headers=headers)
                        seconds = time.monotonic() - started
                    answer.raise_for_status()
                    body = answer.json()
                    result[name] = {
                        "seconds": round(seconds, 2),
                        "rows_per_s": round(count / seconds),
                        "api_rss_mib_peak": round(peak.peak_kib / 1024, 1),
                        "created": body["created"],
                        "updated": body["updated"],
                        "unchanged": body["unchanged"],
                        "errors": len(body["errors"]),
                    }
            result["api_rss_mib_after"] = round(faults.rss_kib(api_pid) / 1024, 1)
            result["ok"] = (
                result["first"]["created"] == count
                and result["again"]["unchanged"] == count
                and result["again"]["created"] + result["again"]["updated"] == 0
            )
            return result
        finally:
            stack.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engineers", type=int, default=10_000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = measure(args.engineers)
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
