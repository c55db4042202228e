"""`make screenshots`: every console page as a reader should see it, into docs/console/.

    python -m measure.console_shots [OUT_DIR] [--settle-s 40]

Starts `sitewatch demo` on a private data directory (its own process group, stopped by its
pid when done), waits for the demo's data to accumulate for `--settle-s` seconds, signs in
with the demo's accounts (one per role) in Debian's Chromium and saves a PNG per page: every
page in Chinese, the main ones in English too, the engineer's page at a phone's size.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
# (account, route, file name, languages, what to wait for)
SHOTS = [
    ("demo-shenzhen", "dashboard", "dashboard", ("zh", "en"), "kpi-registered"),
    ("demo-shenzhen", "alerts", "alerts", ("zh", "en"), "alert-table"),
    ("demo-admin", "engineers", "engineers", ("zh",), "engineer-table"),
    ("demo-admin", "engineers/DEMO-E01", "engineer", ("zh", "en"), "credit-tier"),
    ("demo-admin", "projects", "projects", ("zh",), "project-table"),
    ("demo-admin", "projects/SZ-NS-01", "project", ("zh", "en"), "project-map"),
    ("demo-admin", "filings", "filings", ("zh",), "filing-table"),
    ("demo-admin", "registry", "registry", ("zh",), "engineer-form"),
    ("demo-admin", "map", "live-map", ("zh",), "live-map"),
    ("demo-engineer", "me", "engineer-phone", ("zh", "en"), "record-form"),
    ("demo-vendor", "devices", "vendor", ("zh", "en"), "device-table"),
]


def start_demo(data_dir: Path) -> tuple[subprocess.Popen[bytes], str]:
    log = (data_dir / "demo.log").open("wb")
    demo = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("sitewatch")),
            "demo",
            "--data-dir",
            str(data_dir / "stack"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = (data_dir / "demo.log").read_text(errors="replace")
        if "demo running" in text:
            endpoints = json.loads((data_dir / "stack" / "endpoints.json").read_text())
            return demo, str(endpoints["http"])
        if demo.poll() is not None:
            raise SystemExit(f"sitewatch demo stopped:\n{text[-3000:]}")
        time.sleep(1)
    os.killpg(demo.pid, signal.SIGTERM)
    raise SystemExit("sitewatch demo did not start within 300 s")


def sign_in(page: Page, base: str, username: str, password: str, lang: str) -> None:
    page.goto(f"{base}/console/?lang={lang}#/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.get_by_test_id("nav").wait_for()
    page.wait_for_url(lambda url: "#/login" not in url)


def shoot(base: str, accounts: dict[str, str], out: Path) -> list[Path]:
    written = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        for account, route, name, langs, ready in SHOTS:
            for lang in langs:
                phone = name == "engineer-phone"
                context = browser.new_context(
                    viewport=PHONE if phone else DESKTOP,
                    device_scale_factor=2 if phone else 1,
                    geolocation={"latitude": 22.5405, "longitude": 113.9479},
                    permissions=["geolocation"],
                )
                page = context.new_page()
                sign_in(page, base, account, accounts[account], lang)
                page.goto(f"{base}/console/#/{route}")
                page.get_by_test_id(ready).wait_for()
                if name == "alerts" and page.locator("[data-alert]").count():
                    page.locator("[data-alert]").first.click()  # the details and history
                page.wait_for_load_state("networkidle")
                page.wait_for_timeout(1500)  # charts animate, tiles of the live map settle
                path = out / f"{name}-{lang}.png"
                page.screenshot(path=str(path), full_page=not phone and name != "live-map")
                written.append(path)
                print(f"  {path}", flush=True)
                context.close()
        browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    args = argparse.ArgumentParser(prog="python -m measure.console_shots", description=__doc__)
    args.add_argument("out", nargs="?", default="docs/console")
    args.add_argument("--settle-s", type=float, default=40.0)
    opts = args.parse_args(argv)
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="sitewatch-shots-") as tmp:
        demo, base = start_demo(Path(tmp))
        try:
            accounts = json.loads((Path(tmp) / "stack" / "demo-accounts.json").read_text())
            print(f"demo up at {base}; letting data accumulate {opts.settle_s:.0f} s", flush=True)
            time.sleep(opts.settle_s)
            written = shoot(base, accounts, out)
        finally:
            os.killpg(demo.pid, signal.SIGTERM)
            demo.wait(timeout=60)
    print(f"{len(written)} screenshots in {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
