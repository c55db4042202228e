"""The console in a real browser: Debian's Chromium driven by Playwright against the session's
stack, signed in with real accounts of each role. `world` registers what the pages show: two
cities (Shenzhen and Guangzhou), each with a project, its chief, a device whose reading crossed
its limit (an alert), and a record with a photo in Shenzhen; accounts for an admin, a regulator
of each city, the Shenzhen engineer and the Shenzhen vendor."""

from __future__ import annotations

import io
import json
import random
import secrets
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page

from simulators.demo import boundaries
from tests.map.conftest import CHROMIUM_ARGS, browser, playwright  # noqa: F401 - fixtures
from tests.stack_client import StackClient, site, wait_until

VIEWPORT = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass
class City:
    region_code: str  # the city's code, what its regulator is scoped to
    district: str
    project: str
    engineer: dict[str, Any]
    device: str
    lon: float
    lat: float


@dataclass
class World:
    sz: City
    gz: City
    passwords: dict[str, str] = field(default_factory=dict)  # username -> password
    usernames: dict[str, str] = field(default_factory=dict)  # role name -> username
    record_id: str = ""
    filing_id: int = 0

    def token(self, sw: StackClient, who: str) -> str:
        with sw.api() as api:
            r = api.post(
                "/api/login",
                json={
                    "username": self.usernames[who],
                    "password": self.passwords[self.usernames[who]],
                },
            )
        assert r.status_code == 200, r.text
        return str(r.json()["token"])


def photo_jpeg(seed: int = 0) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (160, 120), (40 * seed % 255, 120, 200)).save(out, "JPEG")
    return out.getvalue()


def _city(
    sw: StackClient, api: httpx.Client, tag: str, city: str, district: str, lon: float, lat: float
) -> City:
    engineer = sw.new_engineer(f"CON-{tag}", registered_region=district, name=f"{tag}工程师")
    project = f"CON-{tag}-{uuid.uuid4().hex[:6]}"
    r = api.post(
        "/api/projects",
        json=site(
            project,
            lon,
            lat,
            region_code=district,
            d=0.002,
            name=f"{tag}测试项目",
            chief_engineer_id=engineer["id"],
        ),
    )
    assert r.status_code == 201, r.text
    registered = sw.new_device(
        f"CON-{tag}-D", project, kind="crane", thresholds={"wind_ms": {"max": 20}}
    )
    device, password = registered["id"], registered["mqtt_password"]
    now = time.time()
    for k, wind in enumerate((12.5, 14.0, 26.5)):  # the last one crosses the limit
        sw.publish(
            f"sitewatch/devices/{device}/telemetry",
            {"msg_id": f"{device}-{k}", "ts": now - 300 + 60 * k, "metrics": {"wind_ms": wind}},
            username=device,
            password=password,
        )
    return City(city, district, project, engineer, device, lon, lat)


@pytest.fixture(scope="session")
def world(sw: StackClient) -> World:
    with sw.api() as api:
        r = api.post("/api/regions/import", content=json.dumps(boundaries()))
        assert r.status_code == 200, r.text
        sz_lon, sz_lat = (
            round(random.uniform(113.920, 113.938), 5),
            round(random.uniform(22.535, 22.555), 5),
        )
        sz = _city(sw, api, "SZ", "440300", "440305", sz_lon, sz_lat)
        gz = _city(
            sw, api, "GZ", "440100", "440106", 113.3300 + random.uniform(-0.004, 0.004), 23.1300
        )
        w = World(sz, gz)
        suffix = uuid.uuid4().hex[:6]
        accounts = {
            "admin": {"role": "admin"},
            "sz": {"role": "regulator", "region_code": "440300"},
            "gz": {"role": "regulator", "region_code": "440100"},
            "engineer": {"role": "engineer", "engineer_id": sz.engineer["id"]},
            "vendor": {"role": "vendor", "device_ids": [sz.device]},
        }
        for who, scope in accounts.items():
            username, password = f"con-{who}-{suffix}", secrets.token_urlsafe(12)
            r = api.post("/api/users", json={"username": username, "password": password, **scope})
            assert r.status_code == 201, r.text
            w.usernames[who], w.passwords[username] = username, password
        record = {
            "msg_id": f"con-rec-{suffix}",
            "engineer_id": sz.engineer["id"],
            "project_id": sz.project,
            "ts": time.time() - 120,
            "lat": sz.lat,
            "lon": sz.lon,
            "text": "巡视基坑支护，监测点位移正常。",
        }
        r = api.post(
            "/api/records",
            data={"record": json.dumps(record, ensure_ascii=False)},
            files=[("photo", ("p.jpg", photo_jpeg(1), "image/jpeg"))],
        )
        assert r.status_code == 201, r.text
        w.record_id = r.json()["id"]
        # a Guangzhou engineer filed to practise in Nanshan: Shenzhen's regulator sees them
        filed = sw.new_engineer("CON-FILED", registered_region="440106")
        r = api.post(
            "/api/filings",
            json={
                "engineer_id": filed["id"],
                "region_code": "440305",
                "valid_from": "2026-01-01",
                "valid_to": "2030-12-31",
            },
        )
        assert r.status_code == 201, r.text
        w.filing_id = r.json()["id"]
        for city in (sz, gz):
            wait_until(
                lambda city=city: api.get("/api/alerts", params={"device_id": city.device}).json(),
                what=f"the threshold alert of {city.device}",
            )
        wait_until(
            lambda: api.get("/api/records", params={"project_id": sz.project}).json(),
            what="the record stored",
        )
    return w


@dataclass
class Console:
    """One signed-in browser context; `problems` collects what the page complained about."""

    context: BrowserContext
    page: Page
    base: str
    problems: list[str] = field(default_factory=list)

    def go(self, route: str) -> None:
        self.page.goto(f"{self.base}/console/#/{route}")

    def text(self, testid: str) -> str:
        return self.page.get_by_test_id(testid).inner_text()


@pytest.fixture
def console(browser: Browser, sw: StackClient, world: World) -> Iterator[Any]:  # noqa: F811
    opened: list[Console] = []

    def _open(
        who: str,
        *,
        lang: str = "zh",
        viewport: dict[str, int] = VIEWPORT,
        geolocation: dict[str, float] | None = None,
        enforce_csp: bool = False,
    ) -> Console:
        # Playwright's string predicates (wait_for_function) are evaluated as code, which the
        # console's Content-Security-Policy forbids: tests that use them bypass the policy, and
        # the tests that visit every page keep it, so a page needing more than it allows fails
        context = browser.new_context(
            bypass_csp=not enforce_csp,
            viewport=viewport,
            locale="zh-CN" if lang == "zh" else "en-US",
            geolocation=geolocation,
            permissions=["geolocation"] if geolocation else [],
            accept_downloads=True,
        )
        page = context.new_page()
        c = Console(context, page, sw.http)
        page.on("pageerror", lambda e: c.problems.append(f"page error: {e}"))
        page.on(
            "console",
            lambda m: (
                c.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
            ),
        )
        page.on(
            "response",
            lambda r: c.problems.append(f"{r.status} {r.url}") if r.status >= 500 else None,
        )
        page.goto(f"{sw.http}/console/?lang={lang}#/login")
        page.fill("input[name=username]", world.usernames[who])
        page.fill("input[name=password]", world.passwords[world.usernames[who]])
        page.click("button[type=submit]")
        page.get_by_test_id("nav").wait_for()
        page.wait_for_url(lambda url: "#/login" not in url)  # the router has left the form
        opened.append(c)
        return c

    yield _open
    for c in opened:
        c.context.close()
