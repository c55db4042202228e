"""The live map in a real browser: Debian's Chromium driven by Playwright (sync API), against
the session's stack. Helpers open the map with a token and collect what the page complains
about; figures measured by the tests are gathered in `artifacts/map-metrics.json`."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from simulators.demo import boundaries
from tests.conftest import ARTIFACTS
from tests.stack_client import StackClient

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
LIVE = (
    "window.sitewatch && window.sitewatch.state.ws === 'live'"
    " && window.sitewatch.state.lastResync !== null"
)

# Real places, so the imported boundaries locate them: Nanshan (Shenzhen) and Tianhe (Guangzhou).
SZ_NANSHAN = (113.9300, 22.5300)
GZ_TIANHE = (113.3300, 23.1300)


# Module scope, not session: Playwright's sync API keeps an event loop running in this thread
# while it is open, and later tests that call asyncio.run() would fail.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    assert CHROMIUM.exists(), "the map tests need Debian's chromium (make bootstrap installs it)"
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    yield b
    b.close()


@pytest.fixture(scope="session")
def regions(sw: StackClient) -> None:
    """Guangdong's city and district boundaries (as `sitewatch demo` loads them)."""
    with sw.api() as api:
        r = api.post("/api/regions/import", content=json.dumps(boundaries()))
        assert r.status_code == 200, r.text


@pytest.fixture(scope="session")
def metrics(artifacts: Path) -> Iterator[dict[str, Any]]:
    figures: dict[str, Any] = {}
    yield figures
    if figures:
        (artifacts / "map-metrics.json").write_text(json.dumps(figures, indent=2, sort_keys=True))


@dataclass
class MapPage:
    context: BrowserContext
    page: Page
    problems: list[str] = field(default_factory=list)

    def js(self, expression: str, arg: Any = None) -> Any:
        return self.page.evaluate(expression, arg)

    def engineer(self, engineer_id: str) -> dict[str, Any] | None:
        return self.js("id => window.sitewatch.engineer(id)", engineer_id)  # type: ignore[no-any-return]

    def wait(self, expression: str, arg: Any = None, timeout_s: float = 30) -> Any:
        try:
            return self.page.wait_for_function(
                expression, arg=arg, timeout=timeout_s * 1000, polling="raf"
            )
        except PlaywrightTimeoutError:
            raise AssertionError(
                f"timed out after {timeout_s} s waiting for {expression} ({arg!r}); "
                f"page state {self.diagnose()}"
            ) from None

    def diagnose(self) -> str:
        """What the page looks like, for a failure message (and a screenshot in artifacts/)."""
        self.page.screenshot(path=str(ARTIFACTS / f"failed-{uuid.uuid4().hex[:6]}.png"))
        state = self.page.evaluate("window.sitewatch ? window.sitewatch.state : null")
        texts = self.page.evaluate(
            """() => ['status', 'pb-info', 'heat-info', 'alert-error', 'login-error']
                 .map(id => id + '=' + (document.getElementById(id) || {}).textContent)"""
        )
        return f"{state} {texts} problems={self.problems}"

    def wait_live(self, timeout_s: float = 30) -> None:
        self.wait(LIVE, timeout_s=timeout_s)

    def pick_region(self, code: str) -> None:
        """Choose `code` in the region picker and wait for the resync that follows."""
        before = self.js("window.sitewatch.state.lastResync")
        self.page.select_option("#region", code)
        self.wait(
            """([code, before]) => { const s = window.sitewatch.state;
                 return s.region === code && s.ws === 'live' && s.lastResync > before; }""",
            [code, before],
        )

    def screenshot(self, path: Path) -> None:
        """Once the view stands still (no zoom or pan animation, boundaries drawn)."""
        self.wait("window.sitewatch.settled()", timeout_s=10)
        self.page.wait_for_timeout(150)
        self.page.screenshot(path=str(path))


@pytest.fixture
def open_map(browser: Browser, sw: StackClient) -> Iterator[Any]:
    pages: list[MapPage] = []

    def _open(token: str | None, *, lang: str = "zh", wait: bool = True) -> MapPage:
        context = browser.new_context(
            viewport=VIEWPORT, locale="zh-CN", timezone_id="Asia/Shanghai"
        )
        page = context.new_page()
        mp = MapPage(context, page)
        page.on(
            "console",
            lambda m: (
                mp.problems.append(f"console {m.type}: {m.text}")
                if m.type in ("error", "assert")
                else None
            ),
        )
        page.on("pageerror", lambda e: mp.problems.append(f"page error: {e}"))
        page.on(
            "requestfailed",
            lambda r: (
                None
                if "ERR_ABORTED" in (r.failure or "")  # a superseded boundaries request
                else mp.problems.append(f"request failed: {r.url} {r.failure}")
            ),
        )
        query = f"?lang={lang}" + (f"&token={token}" if token else "")
        page.goto(f"{sw.http}/map/{query}")
        if wait:
            mp.wait_live()
        pages.append(mp)
        return mp

    yield _open
    for mp in pages:
        mp.context.close()


def regulator_token(sw: StackClient, region_code: str) -> str:
    with sw.api() as api:
        r = api.post("/api/tokens", json={"role": "regulator", "region_code": region_code})
        assert r.status_code == 201, r.text
        return str(r.json()["token"])


def engineer(sw: StackClient, prefix: str, registered_region: str = "440305") -> tuple[str, str]:
    """Registers an engineer with a unique id; returns (id, mqtt_password)."""
    engineer_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
    with sw.api() as api:
        r = api.post(
            "/api/engineers",
            json={
                "id": engineer_id,
                "name": f"测试{engineer_id[-4:]}",
                "registered_region": registered_region,
                "cert_status": "valid",
                "phone": "13912345678",
            },
        )
        assert r.status_code == 201, r.text
        return engineer_id, str(r.json()["mqtt_password"])


def fix(
    sw: StackClient,
    engineer: tuple[str, str],
    lon: float,
    lat: float,
    *,
    ts: float | None = None,
    acc: float = 8,
) -> str:
    """Publishes a check-in fix as the engineer's phone would; returns its msg_id."""
    engineer_id, password = engineer
    msg_id = uuid.uuid4().hex
    payload = {
        "msg_id": msg_id,
        "engineer_id": engineer_id,
        "ts": time.time() if ts is None else ts,
        "lat": lat,
        "lon": lon,
        "acc": acc,
    }
    sw.publish(f"sitewatch/checkin/{engineer_id}", payload, username=engineer_id, password=password)
    return msg_id
