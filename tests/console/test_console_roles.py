"""Sign-in, the pages each role gets, both languages, and region isolation on every page."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import World
from tests.stack_client import StackClient

pytestmark = [pytest.mark.browser, pytest.mark.stack]

NAV = {
    "admin": [
        "dashboard",
        "alerts",
        "engineers",
        "projects",
        "filings",
        "registry",
        "devices",
        "map",
    ],
    "sz": ["dashboard", "alerts", "engineers", "projects", "filings", "map"],
    "engineer": ["me", "map"],
    "vendor": ["devices", "map"],
}
LABELS = {
    "zh": {"alerts": "告警", "signOut": "退出"},
    "en": {"alerts": "Alerts", "signOut": "Sign out"},
}


@pytest.mark.parametrize("lang", ["zh", "en"])
@pytest.mark.parametrize("who", list(NAV))
def test_each_role_gets_its_pages_in_both_languages(
    console: Any, world: World, who: str, lang: str
) -> None:
    c = console(who, lang=lang, enforce_csp=True)
    shown = c.page.eval_on_selector_all(
        "[data-testid=nav] a", "as => as.map(a => a.dataset.testid.slice(4))"
    )
    assert shown == NAV[who]
    assert c.page.get_by_test_id("sign-out").inner_text() == LABELS[lang]["signOut"]
    if "alerts" in shown:
        assert c.page.get_by_test_id("nav-alerts").inner_text() == LABELS[lang]["alerts"]
    other = "en" if lang == "zh" else "zh"
    c.page.get_by_test_id("lang").click()  # switching languages relabels the page at once
    assert c.page.get_by_test_id("sign-out").inner_text() == LABELS[other]["signOut"]
    # the console's own address leads to the role's first page
    c.page.goto(f"{c.base}/console/")
    c.page.wait_for_url(f"**/#/{NAV[who][0]}")
    # a page outside the role sends it home instead of showing anything
    c.go("registry")
    c.page.wait_for_timeout(300)
    assert ("#/registry" in c.page.url) == (who == "admin")
    assert not c.problems, c.problems


def test_a_wrong_password_is_refused_with_a_reason(
    browser: Any, sw: StackClient, world: World
) -> None:
    context = browser.new_context()
    page = context.new_page()
    try:
        page.goto(f"{sw.http}/")  # the server's root: the console, and with no account its form
        page.wait_for_url("**/console/#/login")
        page.goto(f"{sw.http}/console/?lang=en&token={sw.admin_token}#/alerts")
        # no account, and a token in the address is not one: the sign-in form, which remembers
        # where to go
        page.wait_for_url("**/#/login**")
        assert "token=" not in page.url
        page.fill("input[name=username]", world.usernames["sz"])
        page.fill("input[name=password]", "not the password")
        page.click("button[type=submit]")
        assert "wrong username or password" in page.get_by_test_id("error").inner_text()
        page.fill("input[name=password]", world.passwords[world.usernames["sz"]])
        page.click("button[type=submit]")
        page.wait_for_url("**/#/alerts")
        assert page.evaluate("localStorage.getItem('sitewatch.token')").startswith("sw_")
        page.get_by_test_id("sign-out").click()
        page.wait_for_url("**/#/login**")
        assert page.evaluate("localStorage.getItem('sitewatch.token')") is None
    finally:
        context.close()


@pytest.mark.parametrize("lang", ["zh", "en"])
def test_a_regulator_never_sees_another_regions_data(console: Any, world: World, lang: str) -> None:
    c = console("sz", lang=lang, enforce_csp=True)
    gz = world.gz
    foreign = [gz.project, gz.engineer["id"], gz.device]
    for route, ready in [
        ("dashboard", "kpi-registered"),
        ("alerts", "alert-table"),
        ("engineers", "engineer-table"),
        ("projects", "project-table"),
        ("filings", "filing-table"),
    ]:
        c.go(route)
        c.page.get_by_test_id(ready).wait_for()
        c.page.wait_for_load_state("networkidle")
        body = c.page.inner_text("body")
        assert not [x for x in foreign if x in body], (route, body[:2000])
    # its own are there
    c.go("projects")
    c.page.locator(f"[data-project='{world.sz.project}']").wait_for()
    # the other city's pages, asked for by address, show the refusal and nothing of theirs
    for route in (f"engineers/{gz.engineer['id']}", f"projects/{gz.project}"):
        c.go(route)
        c.page.get_by_test_id("error").wait_for()
        main = c.page.inner_text("main")
        assert "GZ测试项目" not in main and "GZ工程师" not in main, main
    # the live map inside the console is signed in with the same account, scoped the same way
    c.go("map")
    frame = c.page.frame_locator("[data-testid=live-map]")
    frame.locator("#map").wait_for()
    live = c.page.frames[-1]
    live.wait_for_function("window.sitewatch && window.sitewatch.state.ws === 'live'")
    assert live.evaluate("[window.sitewatch.state.role, window.sitewatch.state.region]") == [
        "regulator",
        "440300",
    ]
    # and the alerts page filtered to the other city's device gives nothing
    c.go("alerts")
    c.page.get_by_test_id("f-engineer").fill(gz.engineer["id"])
    with c.page.expect_response(
        lambda r: "/api/alerts?" in r.url and "engineer_id" in r.url
    ) as answer:
        c.page.get_by_test_id("f-search").click()
    assert answer.value.ok
    c.page.wait_for_timeout(300)  # Vue renders the answer
    assert c.text("total") == "0"
    problems = [p for p in c.problems if "403" not in p and "404" not in p]
    assert not problems, problems
