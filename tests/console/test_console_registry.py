"""The administrator's registry pages: a change made meanwhile by someone else is refused with
the conflict shown (ETag), a project drawn on the map, a bulk import's per-row errors, a
filing revoked."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.console.conftest import World
from tests.stack_client import StackClient

pytestmark = [pytest.mark.browser, pytest.mark.stack]


def test_a_stale_etag_shows_the_conflict_and_a_reload_saves(
    console: Any, sw: StackClient, world: World
) -> None:
    engineer = sw.new_engineer("CON-ETAG")
    c = console("admin", lang="en")
    c.go("registry")
    c.page.get_by_test_id("eng-id").fill(engineer["id"])
    c.page.get_by_test_id("eng-load").click()
    c.page.wait_for_function("document.querySelector('[data-testid=eng-name]').value === '工程师'")
    with sw.api() as api:  # someone else changes the engineer meanwhile
        r = api.patch(f"/api/engineers/{engineer['id']}", json={"name": "王工"})
        assert r.status_code == 200, r.text
    c.page.get_by_test_id("eng-name").fill("李工")
    c.page.get_by_test_id("eng-save").click()
    assert "changed this meanwhile" in c.page.get_by_test_id("error").inner_text()
    with sw.api() as api:
        assert (
            api.get(f"/api/engineers/{engineer['id']}").json()["name"] == "王工"
        )  # not overwritten
    c.page.get_by_test_id("eng-reload").click()
    c.page.wait_for_function("document.querySelector('[data-testid=eng-name]').value === '王工'")
    c.page.get_by_test_id("eng-name").fill("李工")
    c.page.get_by_test_id("eng-cert").select_option("suspended")
    c.page.get_by_test_id("eng-save").click()
    c.page.get_by_test_id("message").wait_for()
    with sw.api() as api:
        after = api.get(f"/api/engineers/{engineer['id']}").json()
        assert (after["name"], after["cert_status"]) == ("李工", "suspended")
        changes = api.get(f"/api/engineers/{engineer['id']}/changes").json()
    assert changes[-1]["changes"]["name"] == ["王工", "李工"]
    assert not [p for p in c.problems if "412" not in p], c.problems


def test_a_project_drawn_on_the_map_is_registered(
    console: Any, sw: StackClient, world: World
) -> None:
    c = console("admin")
    c.go("registry")
    c.page.get_by_test_id("tab-projects").click()
    project_id = f"CON-DRAWN-{uuid.uuid4().hex[:6]}"
    c.page.get_by_test_id("prj-id").fill(project_id)
    c.page.get_by_test_id("prj-name").fill("绘制的项目")
    box = c.page.get_by_test_id("draw-map").bounding_box()
    assert box is not None
    for dx, dy in ((0.3, 0.3), (0.6, 0.3), (0.6, 0.6), (0.3, 0.6)):
        c.page.mouse.click(box["x"] + box["width"] * dx, box["y"] + box["height"] * dy)
    c.page.get_by_test_id("prj-save").click()
    c.page.get_by_test_id("message").wait_for()
    with sw.api() as api:
        feature = api.get(f"/api/projects/{project_id}").json()
    ring = feature["geometry"]["coordinates"][0][0]
    assert len(ring) == 5 and feature["properties"]["region_code"] == "440305"  # located in Nanshan
    assert project_id in c.text("message")
    assert not c.problems, c.problems


def test_a_bulk_import_shows_each_bad_row(
    console: Any, sw: StackClient, world: World, tmp_path: Any
) -> None:
    good = f"CON-IMP-{uuid.uuid4().hex[:6]}"
    table = tmp_path / "engineers.csv"
    table.write_text(
        "id,name,registered_region,cert_status\n"
        f"{good},导入工程师,440305,valid\n"
        f"{good}-2,坏行,4403,valid\n"
        f"{good}-3,坏状态,440305,maybe\n",
        encoding="utf-8",
    )
    with sw.api() as api:
        expected = api.post(
            "/api/import/engineers",
            params={"dry_run": "true"},
            content=table.read_bytes(),
            headers={"Content-Type": "text/csv"},
        ).json()
    assert len(expected["errors"]) == 2
    c = console("admin", lang="en")
    c.go("registry")
    c.page.get_by_test_id("tab-import").click()
    c.page.get_by_test_id("imp-file").set_input_files(str(table))
    c.page.get_by_test_id("imp-send").click()  # a dry run first
    c.page.get_by_test_id("imp-result").wait_for()
    assert c.text("imp-errors") == "2" and c.text("imp-created") == "1"
    rows = c.page.eval_on_selector_all(
        "[data-testid=imp-result] tr[data-row]", "rs => rs.map(r => Number(r.dataset.row))"
    )
    assert rows == [e["row"] for e in expected["errors"]] == [3, 4]
    with sw.api() as api:
        assert api.get(f"/api/engineers/{good}").status_code == 404  # a dry run writes nothing
    c.page.get_by_test_id("imp-dry").uncheck()
    with c.page.expect_response(lambda r: "dry_run=false" in r.url) as answer:
        c.page.get_by_test_id("imp-send").click()
    assert answer.value.ok
    with sw.api() as api:
        assert api.get(f"/api/engineers/{good}").json()["name"] == "导入工程师"
    assert not c.problems, c.problems


def test_a_filing_reviewed_and_revoked(console: Any, sw: StackClient, world: World) -> None:
    regulator = console("sz", lang="en")
    regulator.go("filings")
    row = regulator.page.locator(f"[data-filing='{world.filing_id}']")
    row.wait_for()
    assert row.get_by_test_id("filing-state").inner_text() == "valid"
    assert row.get_by_test_id("revoke").count() == 0  # a regulator reviews, an admin revokes
    admin = console("admin", lang="en")
    admin.go("filings")
    admin.page.locator(f"[data-filing='{world.filing_id}']").get_by_test_id("revoke").click()
    admin.page.get_by_test_id("message").wait_for()
    with sw.api() as api:
        (filing,) = [f for f in api.get("/api/filings").json() if f["id"] == world.filing_id]
    assert filing["revoked_on"] is not None
    regulator.page.reload()
    regulator.page.locator(
        f"[data-filing='{world.filing_id}'] [data-testid=filing-state]"
    ).get_by_text("revoked").wait_for()
    assert not admin.problems and not regulator.problems, admin.problems + regulator.problems
