"""The console with a province's registry: time to first render of its pages, measured in a
real browser on a stack of its own.

    python -m measure.console_load [--engineers 20000] [--projects 10000] [--alerts 100000]
                                   [--runs 5] [--json FILE] [--write-docs]

Registers `--engineers` engineers and `--projects` projects (bulk import, CSV) in Shenzhen's
districts, adds `--alerts` alerts spread over 90 days straight into the database (the pages
only read them; the rule engine is measured by `sitewatch bench`), signs in as an admin and
as Shenzhen's regulator in Debian's Chromium and loads each page `--runs` times: the time from
navigation to the page's first rows (or figures) on screen, and the time of the API call
behind it. With `--write-docs` the figures replace the section between the console markers
of docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import secrets
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
from playwright.sync_api import Page, sync_playwright

from simulators.demo import boundaries
from stack.up import Stack, StackOptions

DISTRICTS = ("440303", "440304", "440305", "440306", "440307", "440308", "440309", "440310")
# the centres of those districts, roughly: projects are laid out in a grid around each
CENTRES = {
    "440303": (114.13, 22.56),
    "440304": (114.05, 22.54),
    "440305": (113.93, 22.53),
    "440306": (113.85, 22.68),
    "440307": (114.25, 22.68),
    "440308": (114.28, 22.58),
    "440309": (114.03, 22.66),
    "440310": (114.35, 22.71),
}
TYPES = (
    "cross_region_unfiled",
    "sensor_threshold",
    "device_offline",
    "missing_log",
    "impossible_travel",
)
# page -> (route, what shows it rendered, the API call behind it)
PAGES = {
    "alerts": ("alerts", "[data-alert]", "/api/alerts?limit=50&offset=0"),
    "dashboard": ("dashboard", "[data-testid=districts] tr[data-code]", "/api/dashboard?days=30"),
    "engineers": ("engineers", "[data-engineer]", "/api/engineers?limit=50&offset=0"),
    "projects": ("projects", "[data-project]", "/api/projects?limit=50&offset=0"),
}


def engineers_csv(count: int) -> bytes:
    rows = ["id,name,registered_region,cert_status,cert_number"]
    rows += [
        f"CL-E{i:06d},工程师{i},{DISTRICTS[i % len(DISTRICTS)]},{'valid' if i % 40 else 'suspended'},监{i:07d}"
        for i in range(count)
    ]
    return ("\n".join(rows) + "\n").encode()


def projects_csv(count: int, engineers: int) -> bytes:
    rows = ["id,name,region_code,chief_engineer_id,engineer_ids,geometry"]
    per = count // len(DISTRICTS) + 1
    side = int(per**0.5) + 1
    for i in range(count):
        code = DISTRICTS[i % len(DISTRICTS)]
        k = i // len(DISTRICTS)
        lon0, lat0 = CENTRES[code]
        lon, lat = lon0 + (k % side - side / 2) * 0.0009, lat0 + (k // side - side / 2) * 0.0009
        d = 0.0003
        ring = f"{lon - d:.6f} {lat - d:.6f}, {lon + d:.6f} {lat - d:.6f}, {lon + d:.6f} {lat + d:.6f}, {lon - d:.6f} {lat + d:.6f}, {lon - d:.6f} {lat - d:.6f}"
        chief = f"CL-E{(2 * i) % engineers:06d}"
        member = f"CL-E{(2 * i + 1) % engineers:06d}"
        rows.append(f'CL-P{i:06d},项目{i},{code},{chief},{member},"POLYGON(({ring}))"')
    return ("\n".join(rows) + "\n").encode()


def add_alerts(database_url: str, count: int) -> None:
    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql")) as conn:
        conn.execute(
            "INSERT INTO alerts (id, type, status, region_code, engineer_id, project_id, ts, details)"
            " SELECT 'cl-alert-' || g, (%s::text[])[1 + g %% %s], (ARRAY['open','acked','resolved'])[1 + g %% 3],"
            " (%s::text[])[1 + g %% %s], 'CL-E' || lpad((g %% 20000)::text, 6, '0'),"
            " 'CL-P' || lpad((g %% 10000)::text, 6, '0'), now() - (g %% 7776000) * interval '1 second',"
            " jsonb_build_object('date', (now() - (g %% 7776000) * interval '1 second')::date)"
            " FROM generate_series(1, %s) g",
            (list(TYPES), len(TYPES), list(DISTRICTS), len(DISTRICTS), count),
        )
        conn.execute("ANALYZE alerts")


def first_render(page: Page, base: str, route: str, ready: str, *, cold: bool) -> float:
    """From navigation to `ready` on screen: within the app (another page first), or cold
    (the whole console loaded again, signed in)."""
    page.goto(f"{base}/console/#/filings")
    page.get_by_test_id("filing-table").wait_for()
    started = time.perf_counter()
    page.goto(f"{base}/console/#/{route}")
    if cold:
        page.reload()
    page.wait_for_selector(ready, timeout=120_000)
    return (time.perf_counter() - started) * 1000


def live_map(page: Page, base: str, runs: int) -> dict[str, Any]:
    """The live map (map_ui/, signed in by the same token): from navigation to its projects
    drawn and its feed live."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        page.goto(f"{base}/map/")
        page.wait_for_function(
            "window.sitewatch && window.sitewatch.state.ws === 'live'"
            " && window.sitewatch.state.lastResync !== null && window.sitewatch.state.projects > 0",
            timeout=120_000,
        )
        times.append((time.perf_counter() - started) * 1000)
    return {
        "first_render_ms_median": round(statistics.median(times)),
        "first_render_ms_max": round(max(times)),
        "cold_load_ms_median": round(statistics.median(times)),
    }


def measure(engineers: int, projects: int, alerts: int, runs: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="sitewatch-console-") as tmp:
        stack = Stack(StackOptions(Path(tmp) / "data"))
        stack.start()
        try:
            base = str(stack.endpoints["http"])
            admin = {"Authorization": f"Bearer {stack.admin_token}"}
            out: dict[str, Any] = {"engineers": engineers, "projects": projects, "alerts": alerts}
            with httpx.Client(base_url=base, headers=admin, timeout=1800) as api:
                api.post("/api/regions/import", content=json.dumps(boundaries())).raise_for_status()
                started = time.monotonic()
                r = api.post(
                    "/api/import/engineers",
                    content=engineers_csv(engineers),
                    headers={"Content-Type": "text/csv"},
                )
                r.raise_for_status()
                out["import_engineers_s"] = round(time.monotonic() - started, 1)
                started = time.monotonic()
                r = api.post(
                    "/api/import/projects",
                    content=projects_csv(projects, engineers),
                    headers={"Content-Type": "text/csv"},
                )
                r.raise_for_status()
                assert not r.json()["errors"], r.json()["errors"][:5]
                out["import_projects_s"] = round(time.monotonic() - started, 1)
                add_alerts(str(stack.endpoints["database"]), alerts)
                accounts = {
                    "admin": {"role": "admin"},
                    "regulator 440300": {"role": "regulator", "region_code": "440300"},
                }
                passwords = {}
                for name, scope in accounts.items():
                    username, password = f"cl-{name.split()[0]}", secrets.token_urlsafe(12)
                    api.post(
                        "/api/users", json={"username": username, "password": password, **scope}
                    ).raise_for_status()
                    passwords[name] = (username, password)
            out["pages"] = {}
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path="/usr/bin/chromium", args=["--no-sandbox"]
                )
                for who, (username, password) in passwords.items():
                    context = browser.new_context(viewport={"width": 1400, "height": 900})
                    page = context.new_page()
                    page.goto(f"{base}/console/#/login")
                    page.fill("input[name=username]", username)
                    page.fill("input[name=password]", password)
                    page.click("button[type=submit]")
                    page.get_by_test_id("nav").wait_for()
                    token = page.evaluate("localStorage.getItem('sitewatch.token')")
                    with httpx.Client(
                        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=120
                    ) as api:
                        for name, (route, ready, call) in PAGES.items():
                            renders = [
                                first_render(page, base, route, ready, cold=False)
                                for _ in range(runs)
                            ]
                            colds = [
                                first_render(page, base, route, ready, cold=True)
                                for _ in range(runs)
                            ]
                            calls = []
                            for _ in range(runs):
                                started = time.perf_counter()
                                api.get(call).raise_for_status()
                                calls.append((time.perf_counter() - started) * 1000)
                            out["pages"][f"{name} ({who})"] = {
                                "first_render_ms_median": round(statistics.median(renders)),
                                "first_render_ms_max": round(max(renders)),
                                "cold_load_ms_median": round(statistics.median(colds)),
                                "api_ms_median": round(statistics.median(calls)),
                            }
                            print(f"{name} ({who}): {out['pages'][f'{name} ({who})']}", flush=True)
                        figures = live_map(page, base, runs)
                        calls = []
                        for _ in range(runs):
                            started = time.perf_counter()
                            api.get(
                                "/api/projects"
                            ).raise_for_status()  # all of them, as the map asks
                            calls.append((time.perf_counter() - started) * 1000)
                        figures["api_ms_median"] = round(statistics.median(calls))
                        out["pages"][f"live map ({who})"] = figures
                        print(f"live map ({who}): {figures}", flush=True)
                    context.close()
                browser.close()
            return out
        finally:
            stack.stop()


def write_docs(result: dict[str, Any], path: Path, command: str) -> None:
    lines = [
        "<!-- console:begin -->",
        "## Console with a province's registry (`python -m measure.console_load`)",
        "",
        f"`{command}` at {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC on {platform.node()}"
        f" ({result['machine']}; load average {result['loadavg']} at the start): "
        f"{result['engineers']:,} engineers and {result['projects']:,} projects imported"
        f" ({result['import_engineers_s']} s and {result['import_projects_s']} s), {result['alerts']:,}"
        " alerts over 90 days. Time from navigation to the page's first rows on screen in"
        " Chromium (the page's code is already cached, as after sign-in), and the API call behind"
        " it; the median and the slowest of the runs.",
        "",
        "| page (who) | first render in the app, median ms | slowest ms | cold load (page reloaded), median ms | API call, median ms |",
        "|---|---|---|---|---|",
    ]
    for name, figures in result["pages"].items():
        lines.append(
            f"| {name} | {figures['first_render_ms_median']} | {figures['first_render_ms_max']}"
            f" | {figures['cold_load_ms_median']} | {figures['api_ms_median']} |"
        )
    lines += [
        "",
        "The live map's row is a whole load of `/map/` until every project of the caller's"
        " region is drawn (on one canvas past 1,000) and its feed is live; its API call is"
        " `GET /api/projects` of the whole region, which the map asks for once.",
        "<!-- console:end -->",
    ]
    text = path.read_text()
    section = "\n".join(lines)
    if "<!-- console:begin -->" in text:
        head, rest = text.split("<!-- console:begin -->", 1)
        text = head + section + rest.split("<!-- console:end -->", 1)[1]
    else:
        marker = "\n## "
        at = text.index(marker)
        text = text[:at] + "\n\n" + section + "\n" + text[at:]
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m measure.console_load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--engineers", type=int, default=20_000)
    parser.add_argument("--projects", type=int, default=10_000)
    parser.add_argument("--alerts", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args(argv)
    loadavg = Path("/proc/loadavg").read_text().split()[0]
    result = measure(args.engineers, args.projects, args.alerts, args.runs)
    result["loadavg"] = loadavg
    result["machine"] = (
        f"{platform.machine()}, {len(Path('/proc/cpuinfo').read_text().split('processor')) - 1} cores"
    )
    text = json.dumps(result, indent=2, ensure_ascii=False)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if args.write_docs:
        command = "python -m measure.console_load " + " ".join(
            argv if argv is not None else __import__("sys").argv[1:]
        )
        write_docs(result, Path("docs/BENCHMARKS.md"), command.strip())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
