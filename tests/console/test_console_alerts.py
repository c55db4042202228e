"""The alerts page and the dashboard: what they show is what the API says, and the actions
(a note, acknowledge, resolve, in bulk) land in the alert's history."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import World
from tests.stack_client import StackClient

pytestmark = [pytest.mark.browser, pytest.mark.stack]


def test_alerts_filtered_paged_noted_acknowledged_and_resolved(
    console: Any, sw: StackClient, world: World
) -> None:
    token = world.token(sw, "sz")
    c = console("sz", lang="en")
    c.go("alerts")
    c.page.get_by_test_id("alert-table").wait_for()
    with sw.api(token) as api:
        r = api.get("/api/alerts", params={"limit": 50})
        expected = [a["id"] for a in r.json()]
        total = int(r.headers["X-Total-Count"])
    c.page.wait_for_function(
        "n => document.querySelector('[data-testid=total]').textContent === String(n)", arg=total
    )
    shown = c.page.eval_on_selector_all("[data-alert]", "rs => rs.map(r => r.dataset.alert)")
    assert shown == expected

    # filters: the project and the type narrow it to the Shenzhen device's alert
    c.page.get_by_test_id("f-project").fill(world.sz.project)
    c.page.get_by_test_id("f-type").select_option("sensor_threshold")
    c.page.get_by_test_id("f-search").click()
    c.page.wait_for_function("document.querySelector('[data-testid=total]').textContent === '1'")
    with sw.api(token) as api:
        (alert,) = api.get("/api/alerts", params={"project_id": world.sz.project}).json()
    row = c.page.locator(f"[data-alert='{alert['id']}']")
    row.click()
    detail = c.page.get_by_test_id("alert-detail")
    assert "wind_ms" in detail.inner_text()

    # a note without a status change, then acknowledge with a note
    c.page.get_by_test_id("note").fill("现场复核：风速计读数可信")
    c.page.get_by_test_id("add-note").click()
    c.page.get_by_test_id("alert-history").get_by_text("现场复核：风速计读数可信").wait_for()
    c.page.get_by_test_id("note").fill("已通知施工单位停止吊装")
    c.page.get_by_test_id("ack").click()
    c.page.get_by_test_id("alert-history").get_by_text("已通知施工单位停止吊装").wait_for()
    with sw.api(token) as api:
        (after,) = api.get("/api/alerts", params={"project_id": world.sz.project}).json()
        assert after["status"] == "acked"
        notes = [(h["status"], h["note"]) for h in after["history"]]
        assert ("note", "现场复核：风速计读数可信") in notes
        assert ("acked", "已通知施工单位停止吊装") in notes
        assert api.get(f"/api/alerts/{alert['id']}/verify").json()["ok"] is True

    # bulk: select every row on the page and resolve them
    c.page.get_by_test_id("select-all").check()
    c.page.get_by_test_id("bulk-resolve").click()
    c.page.wait_for_function(
        "document.querySelector('[data-alert] .badge').className.includes('resolved')"
    )
    with sw.api(token) as api:
        (resolved,) = api.get("/api/alerts", params={"project_id": world.sz.project}).json()
    assert resolved["status"] == "resolved"

    # export: the current filter as CSV
    with c.page.expect_download() as download:
        c.page.get_by_test_id("export").click()
    csv_text = download.value.path().read_text(encoding="utf-8-sig")
    assert csv_text.splitlines()[0].startswith("id,type,status")
    assert alert["id"] in csv_text and world.gz.device not in csv_text
    assert not c.problems, c.problems


@pytest.mark.parametrize("who", ["sz", "admin"])
def test_dashboard_figures_are_the_apis(
    console: Any, sw: StackClient, world: World, who: str
) -> None:
    c = console(who)
    c.go("dashboard")
    c.page.get_by_test_id("kpi-registered").wait_for()
    with sw.api(world.token(sw, who)) as api:
        figures = api.get("/api/dashboard").json()
    assert c.text("kpi-registered") == str(figures["engineers"]["registered"])
    assert c.text("kpi-valid") == str(figures["engineers"]["valid"])
    assert c.text("kpi-assigned") == str(figures["engineers"]["assigned"])
    shown = c.page.eval_on_selector_all(
        "[data-testid=districts] tr[data-code]", "rs => rs.map(r => r.dataset.code)"
    )
    assert shown == [d["code"] for d in figures["districts"]]
    if who == "sz":
        assert all(code.startswith("4403") for code in shown) and "440305" in shown
    # the charts are drawn (ECharts' canvas inside each chart)
    for chart in ("chart-alerts", "chart-categories", "chart-districts"):
        assert c.page.get_by_test_id(chart).locator("canvas").count() == 1
    assert not c.problems, c.problems
