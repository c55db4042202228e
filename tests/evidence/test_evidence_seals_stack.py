"""Evidence that holds against the database's own administrator (CONTRACT §6.2, issue "Secure
by default"): the database owner rewrites an engineer's history consistently (the fix, its
chain entry, every hash after it and the head), which the chain alone cannot notice; the
seal, signed with a key the database never holds, names the rewrite."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg
import pytest

from rules.alert_chain import genesis_hash as alert_genesis
from rules.alert_chain import link as alert_link
from rules.evidence_chain import genesis_hash, link
from stack.up import Stack
from tests.stack_client import StackClient, site, wait_until

pytestmark = pytest.mark.stack

LON, LAT = 113.9412, 22.5412


def _verify(sw: StackClient, engineer_id: str) -> dict[str, Any]:
    with sw.api() as api:
        r = api.get(f"/api/engineers/{engineer_id}/evidence/verify")
    assert r.status_code == 200, r.text
    return dict(r.json())


def _rewrite_consistently(sw: StackClient, engineer_id: str, seq: int) -> None:
    """What an administrator of the database can do: move the fix of entry `seq`, put the
    moved position into its chained bytes, re-link every entry after it, update the head."""
    with psycopg.connect(sw.owner_database) as conn:
        rows = conn.execute(
            "SELECT seq, msg_id, canonical FROM evidence_entries WHERE engineer_id = %s "
            "ORDER BY seq",
            (engineer_id,),
        ).fetchall()
        prev = genesis_hash(engineer_id)
        for s, msg_id, canonical in rows:
            canonical = bytes(canonical)
            if s == seq:
                body = json.loads(canonical)
                body["lat"] = round(body["lat"] + 0.01, 6)  # a kilometre north
                canonical = json.dumps(
                    body, sort_keys=True, separators=(",", ":"), ensure_ascii=False
                ).encode()
                conn.execute(
                    "UPDATE fixes SET geom = ST_SetSRID(ST_MakePoint(%s, %s), 4326) "
                    "WHERE engineer_id = %s AND msg_id = %s",
                    (body["lon"], body["lat"], engineer_id, msg_id),
                )
            digest = link(prev, canonical)
            conn.execute(
                "UPDATE evidence_entries SET canonical = %s, prev_hash = %s, hash = %s "
                "WHERE engineer_id = %s AND seq = %s",
                (canonical, prev, digest, engineer_id, s),
            )
            prev = digest
        conn.execute(
            "UPDATE evidence_heads SET head_hash = %s WHERE engineer_id = %s", (prev, engineer_id)
        )


def test_a_consistent_rewrite_after_a_seal_is_named(sw: StackClient, running_stack: Stack) -> None:
    engineer_id = f"E-seal-{uuid.uuid4().hex[:6]}"
    with sw.api() as api:
        r = api.post(
            "/api/engineers",
            json={
                "id": engineer_id,
                "name": "封存",
                "registered_region": "440305",
                "cert_status": "valid",
            },
        )
    assert r.status_code == 201, r.text
    password = r.json()["mqtt_password"]
    now = round(time.time())
    # three fixes of three hours ago are final once a fix of now moves the watermark past
    # the allowed lateness (an hour): no late record can change their hashes any more
    for i, ts in enumerate([now - 10_800, now - 10_740, now - 10_680, now - 60]):
        sw.publish(
            f"sitewatch/checkin/{engineer_id}",
            {
                "msg_id": f"{engineer_id}-{i}",
                "engineer_id": engineer_id,
                "ts": ts,
                "lat": LAT + i * 1e-4,
                "lon": LON,
                "acc": 5,
            },
            username=engineer_id,
            password=password,
        )
    wait_until(lambda: _verify(sw, engineer_id)["entries"] == 4, timeout_s=90, what="chain")

    with sw.api() as api:
        sealed = api.post("/api/evidence/seal")
    assert sealed.status_code == 200, sealed.text
    data_dir = Path(running_stack.options.data_dir)
    # this seal, or one the periodic sealer made a moment before it
    seal_file = [
        p for p in sorted((data_dir / "seals").glob("seal-*.json")) if engineer_id in p.read_text()
    ][-1]
    before = _verify(sw, engineer_id)
    assert before["ok"] is True
    assert before["seals"]["sealed_entries"] == 1 and before["seals"]["ok"] is True

    _rewrite_consistently(sw, engineer_id, seq=2)
    after = _verify(sw, engineer_id)
    assert after["verified"] == 4  # every link and every fact agrees: the chain alone is fooled
    assert after["ok"] is False and after["broken"]["reason"] == "seal_mismatch"
    assert after["broken_at"] == 3  # the sealed entry (the last final one)
    assert "entries 1..3" in after["broken"]["message"]

    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "commands.main",
            "evidence",
            "verify",
            engineer_id,
            "--database-url",
            sw.endpoints["database"],
            "--data-dir",
            str(data_dir),
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 1, run.stderr
    assert json.loads(run.stdout)["broken"]["reason"] == "seal_mismatch"

    # a seal file forged to match the rewrite is not trusted, and said so
    forged = json.loads(seal_file.read_text())
    rewritten = sw.sql(
        "SELECT hash FROM evidence_entries WHERE engineer_id = %s AND seq = 3", engineer_id
    )[0][0]
    forged["heads"] = [[engineer_id, 3, rewritten]]
    forged_file = seal_file.with_name("seal-99991231T000000Z-000.json")
    forged_file.write_text(json.dumps(forged))
    try:
        result = _verify(sw, engineer_id)
        assert result["broken"]["reason"] == "seal_mismatch"
        assert any(forged_file.name in p for p in result["seals"]["rejected_files"])
    finally:
        forged_file.unlink()


def _verify_alert(sw: StackClient, alert_id: str, token: str | None = None) -> dict[str, Any]:
    with sw.api(token) as api:
        r = api.get(f"/api/alerts/{alert_id}/verify")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_an_alert_and_its_handling_are_chained_and_sealed(sw: StackClient) -> None:
    tag = uuid.uuid4().hex[:6]
    project_id, engineer_id = f"AC-P-{tag}", f"AC-E-{tag}"
    lon, lat = LON + 0.05, LAT
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, lon, lat)).status_code == 201
        r = api.post(  # registered in Guangzhou, no filing for Shenzhen: cross_region_unfiled
            "/api/engineers",
            json={
                "id": engineer_id,
                "name": "跨区",
                "registered_region": "440100",
                "cert_status": "valid",
            },
        )
        assert r.status_code == 201, r.text
        regulator = api.post(
            "/api/tokens", json={"role": "regulator", "region_code": "440300"}
        ).json()["token"]
    sw.publish(
        f"sitewatch/checkin/{engineer_id}",
        {
            "msg_id": f"{engineer_id}-1",
            "engineer_id": engineer_id,
            "ts": round(time.time()) - 30,
            "lat": lat,
            "lon": lon,
            "acc": 5,
            "kind": "checkin",
        },
        username=engineer_id,
        password=r.json()["mqtt_password"],
    )

    def alert_id() -> str | None:
        with sw.api() as api:
            alerts = api.get(
                "/api/alerts", params={"engineer_id": engineer_id, "type": "cross_region_unfiled"}
            ).json()
        return alerts[0]["id"] if alerts else None

    wait_until(lambda: alert_id() is not None, timeout_s=90, what="the alert")
    aid = str(alert_id())
    with sw.api(regulator) as api:
        assert api.post(f"/api/alerts/{aid}/ack", json={"note": "已联系"}).status_code == 200
    result = _verify_alert(sw, aid, regulator)
    assert (result["ok"], result["events"]) == (True, 2), result
    with sw.api() as api:
        assert api.post("/api/evidence/seal").status_code == 200
    assert _verify_alert(sw, aid)["seals"]["sealed_entries"] >= 1

    # the history rewritten in the database: another actor for the acknowledgement
    actor = sw.actor(regulator)
    with psycopg.connect(sw.owner_database) as conn:
        conn.execute(
            "UPDATE alert_history SET actor = 'account:someone-else' WHERE alert_id = %s "
            "AND status = 'acked'",
            (aid,),
        )
    result = _verify_alert(sw, aid)
    assert (result["ok"], result["reason"]) == (False, "history_mismatch"), result

    # ... and the chain rewritten consistently to match: the seal still names it
    with psycopg.connect(sw.owner_database) as conn:
        rows = conn.execute(
            "SELECT seq, canonical FROM alert_events WHERE alert_id = %s ORDER BY seq", (aid,)
        ).fetchall()
        prev = alert_genesis(aid)
        for seq, canonical in rows:
            body = json.loads(bytes(canonical))
            if body.get("actor") == actor:
                body["actor"] = "account:someone-else"
            raw = json.dumps(
                body, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            ).encode()
            digest = alert_link(prev, raw)
            conn.execute(
                "UPDATE alert_events SET canonical = %s, prev_hash = %s, hash = %s "
                "WHERE alert_id = %s AND seq = %s",
                (raw, prev, digest, aid, seq),
            )
            prev = digest
    result = _verify_alert(sw, aid)
    assert (result["ok"], result["reason"], result["broken_at"]) == (False, "seal_mismatch", 2)

    # an alert's status changed behind the API's back
    with psycopg.connect(sw.owner_database) as conn:
        conn.execute("UPDATE alerts SET status = 'resolved' WHERE id = %s", (aid,))
    assert _verify_alert(sw, aid)["reason"] == "fact_mismatch"
