"""Evidence chain, credit, eligibility and history on the real stack: MQTT in, Faust worker,
PostGIS, the HTTP API and the `sitewatch evidence verify` command."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import datetime as dt
import io
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any
from zoneinfo import ZoneInfo

import gmssl.sm3
import orjson
import psycopg
import pytest
from aiokafka import AIOKafkaProducer

from config import topics
from stack.up import Stack
from tests.stack_client import StackClient, one_local_day, site, wait_until
from wire.codecs import decode_mqtt
from wire.records import to_dict

pytestmark = pytest.mark.stack

LON, LAT = 113.9412, 22.5412
TZ = ZoneInfo("Asia/Shanghai")
WAIT = 90.0


def canonical(payload: dict[str, Any]) -> bytes:
    body = {k: v for k, v in payload.items() if k not in ("sig", "mac")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sm3(data: bytes) -> str:
    return str(gmssl.sm3.sm3_hash(list(data)))


def execute(sw: StackClient, query: str, *params: Any) -> None:
    with psycopg.connect(sw.owner_database) as conn:
        conn.execute(query, params)  # type: ignore[arg-type]


def engineer(sw: StackClient, engineer_id: str, **extra: Any) -> str:
    body = {
        "id": engineer_id,
        "name": "证据",
        "registered_region": "440305",
        "cert_status": "valid",
        "ce_hours": 40,
        **extra,
    }
    with sw.api() as api:
        r = api.post("/api/engineers", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["mqtt_password"])


def token(sw: StackClient, **body: Any) -> str:
    with sw.api() as api:
        r = api.post("/api/tokens", json=body)
        assert r.status_code == 201, r.text
        return str(r.json()["token"])


def verify(sw: StackClient, engineer_id: str, tok: str | None = None) -> dict[str, Any]:
    with sw.api(tok) as api:
        r = api.get(f"/api/engineers/{engineer_id}/evidence/verify")
        assert r.status_code == 200, r.text
        return dict(r.json())


def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "commands.main", "evidence", "verify", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def chained(sw: StackClient) -> Iterator[dict[str, Any]]:
    """One engineer with five check-ins (sent out of order) and a supervision log."""
    tag = uuid.uuid4().hex[:6]
    project_id, eng = f"EV-P-{tag}", f"EV-E-{tag}"
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, LON, LAT)).status_code == 201
    password = engineer(sw, eng)
    t0 = one_local_day(900, 240)  # the test reads the day of t0
    offsets = [0, 120, 60, 180, 240]  # m2 (t0+60) arrives after m1 (t0+120)
    sent: dict[str, dict[str, Any]] = {}
    for i, off in enumerate(offsets):
        fix = {
            "msg_id": f"{eng}-m{i}",
            "engineer_id": eng,
            "ts": t0 + off,
            "lat": LAT + i * 1e-5,
            "lon": LON,
            "acc": 5,
            "kind": "checkin" if i == 0 else "position",
        }
        sw.publish(f"sitewatch/checkin/{eng}", fix, username=eng, password=password)
        sent[fix["msg_id"]] = fix
    log = {
        "msg_id": f"{eng}-log",
        "project_id": project_id,
        "ts": t0 + 90,
        "lat": LAT,
        "lon": LON,
        "text": "基坑支护巡视：正常",
    }
    sw.publish(f"sitewatch/logs/{eng}", log, username=eng, password=password)
    sent[log["msg_id"]] = log
    wait_until(lambda: verify(sw, eng)["entries"] == 6, timeout_s=WAIT, what="six chained entries")
    yield {"engineer_id": eng, "project_id": project_id, "t0": t0, "sent": sent}


def test_every_accepted_record_is_chained_in_event_order_with_the_sent_bytes(
    sw: StackClient, chained: dict[str, Any]
) -> None:
    eng, t0, sent = chained["engineer_id"], chained["t0"], chained["sent"]
    day = dt.datetime.fromtimestamp(t0, TZ).date()
    with sw.api() as api:
        r = api.get(f"/api/engineers/{eng}/evidence", params={"date": day.isoformat()})
        assert r.status_code == 200, r.text
        body = r.json()
    entries = [e for e in body["entries"] if e["local_date"] == day.isoformat()]
    assert [e["msg_id"] for e in entries] == [
        f"{eng}-m0",
        f"{eng}-m2",
        f"{eng}-log",
        f"{eng}-m1",
        f"{eng}-m3",
        f"{eng}-m4",
    ]
    assert [e["seq"] for e in body["entries"]] == list(range(1, 7))
    assert body["genesis"] == sm3(eng.encode())
    prev = body["genesis"]
    for e in body["entries"]:
        raw = e["canonical"].encode("utf-8")
        assert raw == canonical(sent[e["msg_id"]])  # exactly what the sender sent
        assert e["prev_hash"] == prev and e["hash"] == sm3(bytes.fromhex(prev) + raw)
        assert e["kind"] == ("log" if e["msg_id"].endswith("-log") else "fix")
        prev = e["hash"]
    assert body["head"]["hash"] == prev and body["head"]["entries"] == 6
    result = verify(sw, eng)
    assert result == {**result, "ok": True, "entries": 6, "head": prev}
    assert "broken_at" not in result


def test_a_redelivered_record_neither_forks_nor_duplicates_the_chain(
    sw: StackClient, chained: dict[str, Any]
) -> None:
    """At-least-once: the same accepted record delivered again by Kafka changes nothing."""
    eng, sent = chained["engineer_id"], chained["sent"]
    before = verify(sw, eng)
    again = [sent[f"{eng}-m1"], sent[f"{eng}-m3"]]
    fresh = {**sent[f"{eng}-m4"], "msg_id": f"{eng}-m5", "ts": sent[f"{eng}-m4"]["ts"] + 60}

    async def redeliver() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=sw.endpoints["kafka"], acks="all")
        await producer.start()
        try:
            for payload in [*again, fresh, *again]:
                record = decode_mqtt(
                    f"sitewatch/checkin/{eng}", canonical(payload), now=time.time()
                )
                value = orjson.dumps({**to_dict(record), "received_at": time.time()})
                await producer.send_and_wait(topics.FIXES, value=value, key=eng.encode())
        finally:
            await producer.stop()

    asyncio.run(redeliver())
    after = wait_until(
        lambda: (v := verify(sw, eng))["entries"] == 7 and v, timeout_s=WAIT, what="m5 chained"
    )
    assert after["ok"] is True, after
    rows = sw.sql(
        "SELECT msg_id, count(*) FROM evidence_entries WHERE engineer_id = %s GROUP BY msg_id",
        eng,
    )
    assert sorted(rows) == sorted((m, 1) for m in [*sent, f"{eng}-m5"])
    # the first six links are untouched: m5 is newer than all of them
    assert sw.sql("SELECT hash FROM evidence_entries WHERE engineer_id = %s AND seq = 6", eng) == [
        (before["head"],)
    ]


def test_tampering_is_caught_and_named_by_the_api_and_the_command(
    sw: StackClient, chained: dict[str, Any], running_stack: Stack
) -> None:
    eng = chained["engineer_id"]
    wait_until(lambda: verify(sw, eng)["entries"] >= 6, timeout_s=WAIT, what="chain")
    data_dir = str(running_stack.options.data_dir)

    # 1. one byte of the stored canonical bytes of entry 3
    ((raw, msg3),) = sw.sql(
        "SELECT canonical, msg_id FROM evidence_entries WHERE engineer_id = %s AND seq = 3", eng
    )
    tampered = bytearray(raw)
    tampered[tampered.index(b'"text"') + 9] ^= 0x01
    execute(
        sw,
        "UPDATE evidence_entries SET canonical = %s WHERE engineer_id = %s AND seq = 3",
        bytes(tampered),
        eng,
    )
    try:
        result = verify(sw, eng)
        assert (result["ok"], result["broken_at"]) == (False, 3)
        assert result["broken"]["reason"] == "hash_mismatch"
        assert result["broken"]["msg_id"] == msg3
        run = cli(running_stack, eng, "--data-dir", data_dir)
        assert run.returncode == 1, run.stderr
        assert "BROKEN at entry 3" in run.stdout and msg3 in run.stdout
        run = cli(running_stack, eng, "--database-url", sw.endpoints["database"], "--json")
        assert run.returncode == 1, run.stderr
        assert json.loads(run.stdout)["broken_at"] == 3
    finally:
        execute(
            sw,
            "UPDATE evidence_entries SET canonical = %s WHERE engineer_id = %s AND seq = 3",
            bytes(raw),
            eng,
        )
    assert verify(sw, eng)["ok"] is True

    # 2. a coordinate of the stored fix of entry 4
    ((msg4,),) = sw.sql(
        "SELECT msg_id FROM evidence_entries WHERE engineer_id = %s AND seq = 4", eng
    )
    move = "UPDATE fixes SET geom = ST_SetSRID(ST_MakePoint(ST_X(geom) + %s, ST_Y(geom)), 4326) "
    move += "WHERE engineer_id = %s AND msg_id = %s"
    execute(sw, move, 0.001, eng, msg4)
    try:
        result = verify(sw, eng)
        assert (result["ok"], result["broken_at"]) == (False, 4)
        assert result["broken"]["reason"] == "fact_mismatch"
        assert "position" in result["broken"]["message"]
    finally:
        execute(sw, move, -0.001, eng, msg4)
    assert verify(sw, eng)["ok"] is True

    # 3. the order of rows: swap the seq numbers of entries 2 and 3
    def swap() -> None:
        with psycopg.connect(sw.endpoints["database"]) as conn:
            conn.execute(
                "UPDATE evidence_entries SET seq = -seq WHERE engineer_id = %s AND seq IN (2, 3)",
                (eng,),
            )
            conn.execute(
                "UPDATE evidence_entries SET seq = CASE seq WHEN -2 THEN 3 ELSE 2 END "
                "WHERE engineer_id = %s AND seq IN (-2, -3)",
                (eng,),
            )

    swap()
    try:
        result = verify(sw, eng)
        assert (result["ok"], result["broken_at"]) == (False, 2)
        assert result["broken"]["reason"] == "prev_mismatch"
        run = cli(running_stack, eng, "--data-dir", data_dir)
        assert run.returncode == 1 and "BROKEN at entry 2" in run.stdout
    finally:
        swap()
    assert verify(sw, eng)["ok"] is True
    run = cli(running_stack, eng, "--data-dir", data_dir)
    assert run.returncode == 0 and "intact" in run.stdout, run.stdout + run.stderr


def test_evidence_scoping(sw: StackClient, chained: dict[str, Any]) -> None:
    eng = chained["engineer_id"]
    me = token(sw, role="engineer", engineer_id=eng)
    someone_else = f"EV-OTHER-{uuid.uuid4().hex[:8]}"  # tokens exist only for engineers
    engineer(sw, someone_else)
    other = token(sw, role="engineer", engineer_id=someone_else)
    province = token(sw, role="regulator", region_code="440000")
    shanghai = token(sw, role="regulator", region_code="310000")
    path = f"/api/engineers/{eng}/evidence/verify"
    for tok, status in [(me, 200), (province, 200), (other, 403), (shanghai, 403)]:
        with sw.api(tok) as api:
            assert api.get(path).status_code == status
    with sw.api() as api:
        assert api.get("/api/engineers/nobody-here/evidence/verify").status_code == 404
        assert api.get(f"/api/engineers/{eng}/evidence?date=yesterday").status_code == 422
    with sw.api("bad-token") as api:
        assert api.get(path).status_code == 401


# --------------------------------------------------------------------------- credit, eligibility


@pytest.fixture(scope="module")
def violator(sw: StackClient) -> dict[str, Any]:
    """An engineer registered in Shenzhen working, unfiled, on a Beijing-coded project that
    requires 20 days a month: a cross-region alert and no attendance."""
    tag = uuid.uuid4().hex[:6]
    project_id, eng = f"EV-BJ-{tag}", f"EV-V-{tag}"
    lon, lat = LON + 0.05, LAT
    with sw.api() as api:
        feature = site(
            project_id,
            lon,
            lat,
            region_code="110105",
            engineer_ids=[eng],
            required_days_per_month=20,
        )
        assert api.post("/api/projects", json=feature).status_code == 201
    password = engineer(sw, eng)
    now = round(time.time()) - 300
    for i in range(2):
        fix = {
            "msg_id": f"{eng}-{i}",
            "engineer_id": eng,
            "ts": now + 30 * i,
            "lat": lat,
            "lon": lon,
            "acc": 5,
        }
        sw.publish(f"sitewatch/checkin/{eng}", fix, username=eng, password=password)
    alert = wait_until(
        lambda: sw.sql(
            "SELECT id FROM alerts WHERE engineer_id = %s AND type = 'cross_region_unfiled'", eng
        ),
        timeout_s=WAIT,
        what="the cross-region alert",
    )
    with sw.api() as api:
        r = api.post(f"/api/alerts/{alert[0][0]}/ack", json={"note": "called the engineer"})
        assert r.status_code == 200, r.text
    wait_until(lambda: verify(sw, eng)["entries"] == 2, timeout_s=WAIT, what="chain")
    return {"engineer_id": eng, "project_id": project_id, "alert_id": alert[0][0]}


def test_credit_breakdown_from_the_stored_facts(sw: StackClient, violator: dict[str, Any]) -> None:
    eng = violator["engineer_id"]
    with sw.api() as api:
        r = api.get(f"/api/engineers/{eng}/credit")
        assert r.status_code == 200, r.text
        credit = r.json()
    b = credit["breakdown"]
    assert b["cross_region_unfiled"]["count"] == 1 and b["cross_region_unfiled"]["penalty"] == 10
    assert b["attendance"]["rate"] == 0.0 and b["attendance"]["penalty"] == 40
    assert b["attendance"]["projects"][0]["project_id"] == violator["project_id"]
    assert (credit["score"], credit["tier"]) == (50.0, "C")
    clean = f"EV-C-{uuid.uuid4().hex[:6]}"
    engineer(sw, clean)
    with sw.api() as api:
        r = api.get(f"/api/engineers/{clean}/credit")
        assert (r.json()["score"], r.json()["tier"]) == (100.0, "A")


def test_eligibility_reasons(sw: StackClient, violator: dict[str, Any]) -> None:
    tag = uuid.uuid4().hex[:6]
    busy = f"EV-B-{tag}"
    engineer(sw, busy, cert_status="suspended", ce_hours=2)
    with sw.api() as api:
        for i in range(3):
            feature = site(f"EV-CH-{tag}-{i}", 100 + i, 30, chief_engineer_id=busy)
            assert api.post("/api/projects", json=feature).status_code == 201
        done = site(f"EV-CH-{tag}-done", 104, 30, chief_engineer_id=busy, status="completed")
        assert api.post("/api/projects", json=done).status_code == 201
        target = violator["project_id"]
        r = api.post(
            "/api/eligibility", json={"engineer_id": busy, "project_id": target, "role": "chief"}
        )
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["eligible"] is False
        assert out["reasons"] == [
            "cert_not_valid",
            "too_many_chief_projects",
            "ce_hours_insufficient",
        ]
        assert all(d["message"] for d in out["details"])
        assert "3 active projects" in out["details"][1]["message"]
        member = {"engineer_id": busy, "project_id": target, "role": "member"}
        assert (
            "too_many_chief_projects"
            not in api.post("/api/eligibility", json=member).json()["reasons"]
        )
        bad = {"engineer_id": violator["engineer_id"], "project_id": target, "role": "chief"}
        assert api.post("/api/eligibility", json=bad).json()["reasons"] == ["credit_tier_c"]
        good = f"EV-G-{tag}"
        engineer(sw, good)
        ok = api.post(
            "/api/eligibility", json={"engineer_id": good, "project_id": target, "role": "chief"}
        ).json()
        assert (ok["eligible"], ok["reasons"]) == (True, [])
        assert api.post("/api/eligibility", json={**member, "role": "boss"}).status_code == 422
        unknown = {**member, "engineer_id": "nobody-here"}
        assert api.post("/api/eligibility", json=unknown).status_code == 404
    outsider = token(sw, role="regulator", region_code="310000")
    with sw.api(outsider) as api:
        assert api.post("/api/eligibility", json=member).status_code == 403

    # the regulator of a project elsewhere reviews the filing: the reasons, not the score
    chengdu = f"EV-CD-{tag}"
    with sw.api() as api:
        feature = site(chengdu, 104.06, 30.67, region_code="510104")
        assert api.post("/api/projects", json=feature).status_code == 201
        full = api.post("/api/eligibility", json={**bad, "project_id": chengdu}).json()
    assert "credit" in full
    project_regulator = token(sw, role="regulator", region_code="510000")
    with sw.api(project_regulator) as api:
        r = api.post("/api/eligibility", json={**bad, "project_id": chengdu})
        assert r.status_code == 200, r.text
        assert r.json()["reasons"] == ["credit_tier_c"] and r.json()["credit"] is None
        assert f"{full['credit']['score']:g}" not in r.json()["details"][0]["message"]
        assert api.get(f"/api/engineers/{bad['engineer_id']}/credit").status_code == 403


# --------------------------------------------------------------------------- history


def test_history_in_json_csv_and_geojson(sw: StackClient, violator: dict[str, Any]) -> None:
    eng = violator["engineer_id"]
    today = dt.datetime.now(TZ).date()
    params = {"from": (today - dt.timedelta(days=1)).isoformat(), "to": today.isoformat()}
    url = f"/api/engineers/{eng}/history"
    with sw.api() as api:
        r = api.get(url, params=params)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["counts"]["fixes"] == 2 and len(body["alerts"]) == 1
        alert = body["alerts"][0]
        assert alert["id"] == violator["alert_id"] and alert["status"] == "acked"
        assert [h["status"] for h in alert["history"]] == ["open", "acked"]
        assert alert["history"][1]["note"] == "called the engineer"
        assert {t["kind"] for t in body["transitions"]} == {"enter"}

        r = api.get(url, params={**params, "format": "csv"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        kinds = [row["record_type"] for row in rows]
        assert kinds.count("fix") == 2 and kinds.count("alert") == 1
        assert kinds.count("alert_action") == 2 and "transition" in kinds
        assert [row["ts"] for row in rows] == sorted(row["ts"] for row in rows)

        r = api.get(url, params={**params, "format": "geojson"})
        assert r.status_code == 200 and "geo+json" in r.headers["content-type"]
        fc = r.json()
        assert fc["type"] == "FeatureCollection"
        fixes = [f for f in fc["features"] if f["properties"]["record_type"] == "fix"]
        assert len(fixes) == 2 and fixes[0]["geometry"]["type"] == "Point"
        alerts = [f for f in fc["features"] if f["properties"]["record_type"] == "alert"]
        assert alerts[0]["geometry"]["type"] == "Point"  # at the fix that raised it

        bad = {"from": today.isoformat(), "to": (today - dt.timedelta(days=3)).isoformat()}
        assert api.get(url, params=bad).status_code == 422
        assert api.get(url, params={"format": "xml"}).status_code == 422

    beijing = token(sw, role="regulator", region_code="110000")  # where the facts are
    with sw.api(beijing) as api:
        body = api.get(url, params=params).json()
        assert body["scope"] == "regional" and len(body["alerts"]) == 1
        assert api.get(f"/api/engineers/{eng}/credit").status_code == 200
    shanghai = token(sw, role="regulator", region_code="310000")
    with sw.api(shanghai) as api:
        assert api.get(url, params=params).status_code == 403


# ------------------------------------------------ chaining and failures (failure injection)


@contextlib.contextmanager
def failing_inserts(sw: StackClient, table: str, engineer_id: str, times: int) -> Iterator[None]:
    """Test-only failure injection: the first `times` rows of `engineer_id` inserted into `table`
    fail with SQLSTATE 57P01 (admin shutdown: a transient error, so the worker runs the batch
    again). A sequence counts the attempts: unlike a table, it is not rolled back with them."""
    name = f"fail_{table}_{uuid.uuid4().hex[:8]}"
    execute(sw, f"CREATE SEQUENCE {name}_attempts")
    execute(
        sw,
        f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.engineer_id = '{engineer_id}' THEN
            IF nextval('{name}_attempts') <= {times} THEN
              RAISE EXCEPTION 'injected failure' USING ERRCODE = '57P01';
            END IF;
          END IF;
          RETURN NEW;
        END $$""",
    )
    execute(
        sw, f"CREATE TRIGGER {name} BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION {name}()"
    )
    try:
        yield
        attempts = sw.sql(f"SELECT last_value FROM {name}_attempts")[0][0]
        assert attempts > times, f"the injected failure never fired ({attempts} attempts)"
    finally:
        execute(sw, f"DROP TRIGGER {name} ON {table}")
        execute(sw, f"DROP FUNCTION {name}()")
        execute(sw, f"DROP SEQUENCE {name}_attempts")


def send_fixes(sw: StackClient, engineer_id: str, n: int) -> None:
    """Register `engineer_id` on a new site and send `n` fixes of it, a minute apart."""
    lon, lat = sw.free_spot(LON, LAT)
    with sw.api() as api:
        r = api.post("/api/projects", json=site(f"{engineer_id}-P", lon, lat))
        assert r.status_code == 201, r.text
    password = engineer(sw, engineer_id)
    t0 = round(time.time()) - 600
    for i in range(n):
        fix = {"msg_id": f"{engineer_id}-{i}", "engineer_id": engineer_id, "ts": t0 + 60 * i}
        fix |= {"lat": lat, "lon": lon, "acc": 5}
        sw.publish(f"sitewatch/checkin/{engineer_id}", fix, username=engineer_id, password=password)


COUNTS_SQL = (
    "SELECT (SELECT count(*) FROM evidence_entries WHERE engineer_id = %s), "
    "(SELECT count(*) FROM fixes WHERE engineer_id = %s)"
)


def test_a_chain_entry_is_never_committed_before_its_fact(sw: StackClient) -> None:
    """While a batch's fact inserts fail (and are retried), none of its chain entries may be
    visible: `evidence verify` would report a chained fix that is not stored as
    `fact_missing`. (The chain commits with the facts; a design that moves it to a transaction
    of its own, tried for speed in the sixth session, must commit it after them.)"""
    eng = "EV-T-" + uuid.uuid4().hex[:6]
    seen: list[tuple[int, int]] = []
    with failing_inserts(sw, "fixes", eng, times=4):
        send_fixes(sw, eng, 3)
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and seen[-1:] != [(3, 3)]:
            ((entries, fixes),) = sw.sql(COUNTS_SQL, eng, eng)  # one statement, one snapshot
            seen.append((entries, fixes))
            assert entries <= fixes, f"chained before stored: {seen[-5:]}"
            time.sleep(0.02)
    assert seen[-1] == (3, 3), seen[-5:]
    assert seen.count((0, 0)) > 10  # watched while the fact inserts failed
    result = verify(sw, eng)
    assert result == {**result, "ok": True, "entries": 3}


def test_a_chain_that_fails_after_its_facts_are_stored_is_completed_once(sw: StackClient) -> None:
    """Chaining fails after the batch's facts were inserted: the batch is not acknowledged and runs
    again; nothing is doubled, and the chain gets every entry once."""
    eng = "EV-T-" + uuid.uuid4().hex[:6]
    with failing_inserts(sw, "evidence_entries", eng, times=2):
        send_fixes(sw, eng, 3)
        wait_until(
            lambda: sw.sql(COUNTS_SQL, eng, eng) == [(3, 3)], timeout_s=WAIT, what="3 chained"
        )
    result = verify(sw, eng)
    assert result["ok"] is True and result["entries"] == 3, result
    assert sw.sql(
        "SELECT count(*), count(DISTINCT msg_id) FROM evidence_entries WHERE engineer_id = %s",
        eng,
    ) == [(3, 3)]
    assert sw.sql("SELECT kind FROM transitions WHERE engineer_id = %s", eng) == [("enter",)]
