"""The investigation dossier (CONTRACT §6.4) against the running stack, with hand-computed
expectations: a chief on site two days with a log on one, a member on site one day without a
log, a notice left open past its deadline; as JSON, CSV and a PDF rendered to PNG that holds
the project's Chinese name."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import time
import uuid
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pypdf
import pypdfium2
import pytest

from tests.api.conftest import token
from tests.api.test_notices import issue_notice
from tests.stack_client import StackClient, site, wait_until

pytestmark = pytest.mark.stack
TZ = ZoneInfo("Asia/Shanghai")
NAME = "深圳湾科技园三期"


def _on_site(sw: StackClient, eng: dict[str, Any], day: dt.date, lon: float, lat: float) -> None:
    """Fixes every 10 minutes 09:00-13:00 (240 minutes: present)."""
    start = dt.datetime.combine(day, dt.time(9), TZ)
    for k in range(25):
        sw.check_in(eng, f"{day}-{k}", (start + dt.timedelta(minutes=10 * k)).timestamp(), lon, lat)


def test_the_dossier_names_every_day_without_a_log_and_every_open_notice(
    sw: StackClient, artifacts: Path
) -> None:
    project_id = f"DS-{uuid.uuid4().hex[:6]}"
    lon, lat = sw.free_spot(113.94, 22.54)
    chief, member = sw.new_engineer("DS"), sw.new_engineer("DS")
    with sw.api() as api:
        body = site(
            project_id,
            lon,
            lat,
            name=NAME,
            chief_engineer_id=chief["id"],
            engineer_ids=[member["id"]],
        )
        assert api.post("/api/projects", json=body).status_code == 201
    today = dt.datetime.now(TZ).date()
    d1, d2 = today - dt.timedelta(days=2), today - dt.timedelta(days=1)
    _on_site(sw, chief, d1, lon, lat)
    _on_site(sw, chief, d2, lon, lat)
    _on_site(sw, member, d1, lon, lat)
    log_ts = dt.datetime.combine(d1, dt.time(11), TZ).timestamp()
    sw.publish(
        f"sitewatch/logs/{chief['id']}",
        {"msg_id": "log-d1", "project_id": project_id, "ts": log_ts, "lat": lat, "lon": lon}
        | {"text": "巡视检查：钢筋绑扎符合要求。"},
        username=chief["id"],
        password=chief["mqtt_password"],
    )
    bearer = token(sw, "engineer", engineer_id=chief["id"])
    notice_id = issue_notice(sw, bearer, project_id, lon, lat, time.time() + 1)
    time.sleep(1.5)  # its deadline passes, never rectified

    def fetched() -> dict[str, Any] | None:
        with sw.api() as api:
            doc = api.get(f"/api/projects/{project_id}/dossier").json()
        days = sum(len(e["days_without_log"]) + e["records"] for e in doc["engineers"])
        # everything in: 3 on-site days, 1 log, 1 notice record
        return doc if days == 4 and len(doc["attendance"]) == 3 else None

    doc = wait_until(fetched, timeout_s=120, what="the dossier's facts")
    by_engineer = {e["engineer_id"]: e for e in doc["engineers"]}
    assert by_engineer[chief["id"]]["days_without_log"] == [d2.isoformat()]
    assert by_engineer[member["id"]]["days_without_log"] == [d1.isoformat()]
    assert all(e["evidence"]["ok"] for e in doc["engineers"]), doc["engineers"]
    assert doc["open_notices"] == [notice_id]
    [notice] = doc["notices"]
    assert notice["overdue"] is True and notice["status"] == "open"
    assert {(a["engineer_id"], a["role"]) for a in doc["assignments"]} == {
        (chief["id"], "chief"),
        (member["id"], "member"),
    }
    with sw.api() as api:
        table = api.get(f"/api/projects/{project_id}/dossier", params={"format": "csv"})
        printed = api.get(f"/api/projects/{project_id}/dossier", params={"format": "pdf"})
    lines = list(csv.DictReader(io.StringIO(table.content.decode("utf-8-sig"))))
    assert sorted(
        (r["engineer_id"], r["date"]) for r in lines if r["section"] == "day_without_log"
    ) == sorted([(chief["id"], d2.isoformat()), (member["id"], d1.isoformat())])
    assert printed.headers["content-type"] == "application/pdf"
    assert NAME in pypdf.PdfReader(io.BytesIO(printed.content)).pages[0].extract_text()
    page = pypdfium2.PdfDocument(printed.content)[0]
    image = page.render(scale=2).to_pil()
    image.save(artifacts / "dossier-page-1.png")
    # the title line is ink, not empty boxes: many dark pixels in its band
    title = image.convert("L").crop((0, 0, image.width, image.height // 12))
    assert sum(v < 128 for v in title.get_flattened_data()) > 2000
    (artifacts / "dossier.json").write_text(json.dumps(doc, ensure_ascii=False, indent=1))


def test_the_dossier_is_for_regulators_of_the_region_and_admins(sw: StackClient) -> None:
    project_id = f"DS-{uuid.uuid4().hex[:6]}"
    lon, lat = sw.free_spot(113.945, 22.545)
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, lon, lat)).status_code == 201
    eng = sw.new_engineer("DS")
    path = f"/api/projects/{project_id}/dossier"
    with sw.api(token(sw, "engineer", engineer_id=eng["id"])) as api:
        assert api.get(path).status_code == 403
    with sw.api(token(sw, "regulator", region_code="440304")) as api:
        assert api.get(path).status_code == 403
    with sw.api(token(sw, "regulator", region_code="440300")) as api:
        assert api.get(path).status_code == 200
        assert api.get(path, params={"from": "2026-01-10", "to": "2026-01-01"}).status_code == 422
        assert api.get(path, params={"format": "docx"}).status_code == 422
