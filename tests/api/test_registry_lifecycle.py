"""The registry changes (CONTRACT §6.3): PATCH with ETag/If-Match, retirement that keeps
history and turns new messages away, each object's changes with their actor, filings listed
and revoked, and a change that reaches the stream rules without a restart."""

from __future__ import annotations

import time
import uuid
from typing import Any

from tests.stack_client import StackClient, site, wait_until

LON, LAT = 113.9612, 22.5212
VALID_CODE = "91350100M000100Y43"  # GB 32100's own example


def _engineer(sw: StackClient, **extra: Any) -> dict[str, Any]:
    """Registered in Guangzhou, with a phone number (a personal field the history masks)."""
    return sw.new_engineer(
        "LC", name="周期", registered_region="440100", phone="13800138000", **extra
    )


def test_a_patch_on_a_stale_read_is_refused_and_every_change_is_kept(sw: StackClient) -> None:
    eng = _engineer(sw)
    path = f"/api/engineers/{eng['id']}"
    with sw.api() as api:
        read = api.get(path)
        tag = read.headers["etag"]
        r = api.patch(
            path,
            json={
                "employer": {"name": "深圳监理公司", "credit_code": VALID_CODE},
                "phone": "13900139000",
                "cert_number": "监0044001",
            },
            headers={"If-Match": tag},
        )
        assert r.status_code == 200, r.text
        assert r.json()["employer"]["credit_code"] == VALID_CODE
        assert r.json()["phone"].endswith("9000") and "139001" not in r.json()["phone"]
        assert r.headers["etag"] != tag
        stale = api.patch(path, json={"name": "另一个"}, headers={"If-Match": tag})
        assert stale.status_code == 412, stale.text
        assert api.get(path).json()["name"] == "周期"  # the stale change was not applied
        bad = api.patch(
            path, json={"employer": {"name": "x", "credit_code": VALID_CODE[:-1] + "4"}}
        )
        assert bad.status_code == 422 and "check character" in bad.text
        assert api.patch(path, json={"name": None}).status_code == 422
        assert api.patch(path, json={"colour": "red"}).status_code == 422
        changes = api.get(f"{path}/changes").json()
    assert [sorted(c["changes"]) for c in changes][1] == ["cert_number", "employer", "phone"]
    assert changes[0]["changes"]["name"] == [None, "周期"]
    assert changes[1]["actor"] == sw.actor(sw.admin_token)
    before, after = changes[1]["changes"]["phone"]
    assert before.endswith("8000") and after.endswith("9000")
    assert "13800138000" not in str(changes) and "13900139000" not in str(changes)


def test_a_certificate_status_is_kept_with_the_day_it_applies_from(sw: StackClient) -> None:
    eng = _engineer(sw)
    with sw.api() as api:
        r = api.patch(
            f"/api/engineers/{eng['id']}",
            json={"cert_status": "suspended", "cert_status_from": "2026-11-20"},
        )
    assert r.status_code == 200, r.text
    assert (r.json()["cert_status"], r.json()["cert_status_from"]) == ("suspended", "2026-11-20")
    rows = sw.sql(
        "SELECT status, from_date::text FROM cert_status_history WHERE engineer_id = %s "
        "ORDER BY id",
        eng["id"],
    )
    # the registration's status applies from the beginning (rules.certificate; asyncpg
    # stores date.min as -infinity)
    assert rows == [("valid", "-infinity"), ("suspended", "2026-11-20")]


def test_a_retired_engineer_stays_readable_and_its_messages_are_turned_away(
    sw: StackClient,
) -> None:
    eng = _engineer(sw)
    with sw.api() as api:
        assert api.delete(f"/api/engineers/{eng['id']}").status_code == 204
        assert api.delete(f"/api/engineers/{eng['id']}").status_code == 204  # again: nothing
        shown = api.get(f"/api/engineers/{eng['id']}").json()
        assert shown["retired_at"]
        actions = [c["changes"] for c in api.get(f"/api/engineers/{eng['id']}/changes").json()]
    assert len(actions) == 2 and "retired_at" in actions[1]
    sw.publish(
        f"sitewatch/checkin/{eng['id']}",
        {
            "msg_id": f"{eng['id']}-after",
            "engineer_id": eng["id"],
            "ts": round(time.time()),
            "lat": LAT,
            "lon": LON,
            "acc": 5,
        },
        username=eng["id"],
        password=eng["mqtt_password"],
    )

    def reasons() -> list[str]:
        return [
            r[0]
            for r in sw.sql(
                "SELECT reason FROM rejected_messages WHERE excerpt LIKE %s", f"%{eng['id']}-after%"
            )
        ]

    wait_until(lambda: reasons() == ["retired"], timeout_s=60, what="the retired rejection")


def test_a_registered_region_change_reaches_the_rules_without_a_restart(sw: StackClient) -> None:
    tag = uuid.uuid4().hex[:6]
    first, second = f"LC-A-{tag}", f"LC-B-{tag}"
    with sw.api() as api:
        for i, project_id in enumerate((first, second)):
            r = api.post("/api/projects", json=site(project_id, LON + i * 0.01, LAT))
            assert r.status_code == 201, r.text
    eng = _engineer(sw)  # registered in Guangzhou, the sites are in Shenzhen

    def fix(i: int, lon: float) -> None:
        sw.publish(
            f"sitewatch/checkin/{eng['id']}",
            {
                "msg_id": f"{eng['id']}-{i}",
                "engineer_id": eng["id"],
                "ts": round(time.time()) - 120 + i,
                "lat": LAT,
                "lon": lon,
                "acc": 5,
            },
            username=eng["id"],
            password=eng["mqtt_password"],
        )

    def alerts() -> list[str]:
        return [
            r[0] for r in sw.sql("SELECT project_id FROM alerts WHERE engineer_id = %s", eng["id"])
        ]

    fix(1, LON)
    wait_until(lambda: alerts() == [first], timeout_s=90, what="cross_region_unfiled")
    with sw.api() as api:
        r = api.patch(f"/api/engineers/{eng['id']}", json={"registered_region": "440305"})
        assert r.status_code == 200, r.text
    fix(2, LON + 0.01)
    wait_until(
        lambda: sw.sql("SELECT count(*) FROM fixes WHERE engineer_id = %s", eng["id"])[0][0] == 2,
        timeout_s=90,
        what="the second fix",
    )
    assert alerts() == [first]  # now registered there: no alert at the second site


def test_filings_are_listed_in_scope_and_revoked_from_a_day(sw: StackClient) -> None:
    eng = _engineer(sw)
    with sw.api() as api:
        created = api.post(
            "/api/filings",
            json={
                "engineer_id": eng["id"],
                "region_code": "440305",
                "valid_from": "2026-01-01",
                "valid_to": "2026-12-31",
            },
        ).json()
        shenzhen = api.post(
            "/api/tokens", json={"role": "regulator", "region_code": "440300"}
        ).json()["token"]
        shanghai = api.post(
            "/api/tokens", json={"role": "regulator", "region_code": "310000"}
        ).json()["token"]
        revoked = api.post(f"/api/filings/{created['id']}/revoke", json={"on": "2026-12-10"})
        assert revoked.status_code == 200 and revoked.json()["revoked_on"] == "2026-12-10"
        later = api.post(f"/api/filings/{created['id']}/revoke", json={"on": "2026-12-20"})
        assert later.json()["revoked_on"] == "2026-12-10"  # only ever brought forward
        assert api.post("/api/filings/999999999/revoke").status_code == 404
    for token, expected in ((shenzhen, [created["id"]]), (shanghai, [])):
        with sw.api(token) as api:
            listed = api.get("/api/filings", params={"engineer_id": eng["id"]}).json()
        assert [f["id"] for f in listed] == expected


def test_a_device_is_changed_on_a_fresh_read_and_retired_without_raising_offline(
    sw: StackClient,
) -> None:
    tag = uuid.uuid4().hex[:6]
    project_id, device_id = f"LC-DP-{tag}", f"LC-D-{tag}"
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, LON + 0.03, LAT)).status_code == 201
        r = api.post(
            "/api/devices",
            json={
                "id": device_id,
                "project_id": project_id,
                "kind": "dust",
                "report_interval_s": 600,
                "thresholds": {"pm10": {"max": 150}},
            },
        )
        assert r.status_code == 201, r.text
        tag0 = api.get(f"/api/devices/{device_id}").headers["etag"]
        r = api.patch(
            f"/api/devices/{device_id}",
            json={"thresholds": {"pm10": {"max": 120}}, "report_interval_s": 300},
            headers={"If-Match": tag0},
        )
        assert r.status_code == 200, r.text
        assert r.json()["thresholds"] == {"pm10": {"max": 120}}
        stale = api.patch(
            f"/api/devices/{device_id}", json={"report_interval_s": 5}, headers={"If-Match": tag0}
        )
        assert stale.status_code == 412
        assert (
            api.patch(f"/api/devices/{device_id}", json={"project_id": "nope"}).status_code == 422
        )
        assert api.delete(f"/api/devices/{device_id}").status_code == 204
        assert api.get(f"/api/devices/{device_id}").json()["retired_at"]
        # never heard from, now expected every second: offline within seconds, were it not
        # retired
        r = api.patch(f"/api/devices/{device_id}", json={"report_interval_s": 1})
        assert r.status_code == 200, r.text
        changes = api.get(f"/api/devices/{device_id}/changes").json()
    assert [sorted(c["changes"]) for c in changes][1:] == [
        ["report_interval_s", "thresholds"],
        ["retired_at"],
        ["report_interval_s"],
    ]
    # the same device not retired (the control): offline within seconds
    with sw.api() as api:
        r = api.post(
            "/api/devices",
            json={
                "id": f"{device_id}-c",
                "project_id": project_id,
                "kind": "dust",
                "report_interval_s": 1,
            },
        )
        assert r.status_code == 201, r.text

    def offline(device: str) -> int:
        return int(sw.sql("SELECT count(*) FROM alerts WHERE device_id = %s", device)[0][0])

    wait_until(lambda: offline(f"{device_id}-c") == 1, timeout_s=60, what="the control's alert")
    assert offline(device_id) == 0
