"""Rectification notices (CONTRACT §6.4, §6.5) against the running stack: a notice issued
with a deadline goes overdue once, is rectified late with a photo, closed, reopened; every
step is a link of its chain (recomputed here) and a live `notice` message on the WebSocket."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
import websockets

from gm.algorithms import canonical_bytes, sm3_hex
from tests.api.conftest import token
from tests.attachments.files import jpeg
from tests.stack_client import StackClient, site, wait_until

pytestmark = pytest.mark.stack


class LiveMessages:
    """The WebSocket's messages of one type, collected in a thread while the test runs."""

    def __init__(self, url: str, kind: str) -> None:
        self.url, self.kind = url, kind
        self.messages: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def __enter__(self) -> LiveMessages:
        self._thread.start()
        assert self._ready.wait(30), "the WebSocket did not connect"
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(10)

    async def _run(self) -> None:
        async with websockets.connect(self.url) as ws:
            self._ready.set()
            while not self._stop.is_set():
                try:
                    message = json.loads(await asyncio.wait_for(ws.recv(), timeout=0.3))
                except TimeoutError:
                    continue
                for m in message if isinstance(message, list) else [message]:
                    if m.get("type") == self.kind:
                        self.messages.append(m)


def issue_notice(
    sw: StackClient, bearer: str, project_id: str, lon: float, lat: float, deadline: float
) -> str:
    record = {
        "msg_id": f"n-{uuid.uuid4().hex[:10]}",
        "project_id": project_id,
        "ts": round(time.time()) - 5,
        "lat": lat,
        "lon": lon,
        "kind": "notice",
        "text": "整改通知：二层临边防护栏杆缺失，限期整改。",
        "severity": "high",
        "deadline": dt.datetime.fromtimestamp(deadline, dt.UTC).isoformat(),
        "responsible": "施工总承包单位 项目经理",
    }
    with sw.api(bearer) as api:
        r = api.post("/api/records", data={"record": json.dumps(record, ensure_ascii=False)})
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def test_a_notice_goes_overdue_once_is_rectified_late_closed_and_reopened(sw: StackClient) -> None:
    project_id = f"NT-{uuid.uuid4().hex[:6]}"
    lon, lat = sw.free_spot(113.92, 22.52)
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, lon, lat)).status_code == 201
    issuer, other = sw.new_engineer("NT"), sw.new_engineer("NT")
    bearer = token(sw, "engineer", engineer_id=issuer["id"])
    stranger = token(sw, "engineer", engineer_id=other["id"])
    with LiveMessages(sw.ws_url(), "notice") as live:
        deadline = time.time() + 3
        notice_id = issue_notice(sw, bearer, project_id, lon, lat, deadline)
        overdue = f"notice_overdue:{notice_id}"

        def alerts() -> list[tuple[Any, ...]]:
            return sw.sql("SELECT id, engineer_id, project_id FROM alerts WHERE id = %s", overdue)

        assert wait_until(alerts, timeout_s=60, what="notice_overdue") == [
            (overdue, issuer["id"], project_id)
        ]
        with httpx.Client(base_url=sw.http, timeout=60) as client:
            r = client.post(
                f"/api/notices/{notice_id}/rectify",
                data={"reply": json.dumps({"text": "已补设防护栏杆并验收。"})},
                files=[("photo", ("fixed.jpg", jpeg(lon_lat=(lon, lat)), "image/jpeg"))],
                headers={"Authorization": f"Bearer {bearer}"},
            )
        assert r.status_code == 200, r.text
        rectified = r.json()
        assert rectified["status"] == "rectified"
        assert dt.datetime.fromisoformat(rectified["settled_at"]).timestamp() > deadline
        with sw.api(stranger) as api:  # another engineer is not told the notice exists
            assert api.post(f"/api/notices/{notice_id}/close").status_code == 404
        with sw.api(bearer) as api:
            assert api.post(f"/api/notices/{notice_id}/rectify", data={}).status_code == 409
            closed = api.post(f"/api/notices/{notice_id}/close", json={"note": "验收合格"})
            assert closed.status_code == 200 and closed.json()["status"] == "closed"
            assert api.post(f"/api/notices/{notice_id}/close").status_code == 409
            reopened = api.post(f"/api/notices/{notice_id}/reopen", json={"note": "复查不合格"})
            assert reopened.status_code == 200 and reopened.json()["status"] == "open"
            assert api.post(f"/api/notices/{notice_id}/rectify", data={}).status_code == 400
        wait_until(lambda: len(live.messages) >= 4, timeout_s=30, what="the live notices")
    assert [m["status"] for m in live.messages if m["id"] == notice_id] == [
        "open",
        "rectified",
        "closed",
        "open",
    ]
    with sw.api(token(sw, "regulator", region_code="440305")) as api:
        shown = api.get(f"/api/notices/{notice_id}").json()
    events = shown["events"]
    assert [e["event"] for e in events] == ["issued", "rectify", "close", "reopen"]
    assert events[1]["details"]["photos"][0]["type"] == "image/jpeg"
    prev = sm3_hex(f"notice:{notice_id}".encode())
    for e in events:  # the chain, recomputed from what the API shows
        prev = sm3_hex(bytes.fromhex(prev) + canonical_bytes(e["details"]))
        assert e["hash"] == prev
    time.sleep(5)  # more checks of the worker's timer: still one alert for the notice
    assert len(alerts()) == 1
    # the issuer's rectification closure: one notice due, closed after its deadline
    with sw.api() as api:
        credit = api.get(f"/api/engineers/{issuer['id']}/credit").json()
    term = credit["breakdown"]["rectification_closure"]
    assert (term["due"], term["closed_on_time"], term["penalty"]) == (1, 0, 10.0)


@pytest.mark.parametrize(
    "deadline",
    [1e18, "9999-12-31T23:59:59-14:00", "2001-01-01T00:00:00+08:00", "tomorrow", None],
    ids=["epoch-overflow", "year-9999", "before-the-notice", "not-a-time", "missing"],
)
def test_a_notice_without_a_usable_deadline_is_refused(sw: StackClient, deadline: Any) -> None:
    eng = sw.new_engineer("NT")
    project_id = f"NT-{uuid.uuid4().hex[:6]}"
    with sw.api() as api:
        feature = site(project_id, *sw.free_spot(113.915, 22.515))
        assert api.post("/api/projects", json=feature).status_code == 201
    record = {
        "msg_id": f"n-{uuid.uuid4().hex[:10]}",
        "project_id": project_id,
        "ts": round(time.time()) - 5,
        "lat": 22.5,
        "lon": 113.9,
        "kind": "notice",
        "text": "整改通知",
        "deadline": deadline,
    }
    with sw.api(token(sw, "engineer", engineer_id=eng["id"])) as api:
        r = api.post("/api/records", data={"record": json.dumps(record)})
    assert r.status_code == 400, r.text
    assert r.json()["detail"]["reason"] == "bad_value"
    assert "deadline" in r.json()["detail"]["message"]


def test_a_replayed_record_opens_no_notice(sw: StackClient) -> None:
    """A record taken as a log, then its msg_id sent again as a stop-work order on another
    project: the second is a replay, and no notice exists (the worker opens notices from the
    records it writes, not from requests)."""
    project_id = f"NT-{uuid.uuid4().hex[:6]}"
    lon, lat = sw.free_spot(113.925, 22.525)
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, lon, lat)).status_code == 201
    eng = sw.new_engineer("NT")
    msg_id = f"r-{uuid.uuid4().hex[:8]}"
    base = {"msg_id": msg_id, "project_id": project_id, "lat": lat, "lon": lon, "text": "巡视"}
    with sw.api(token(sw, "engineer", engineer_id=eng["id"])) as api:
        first = api.post("/api/records", data={"record": json.dumps(base | {"ts": time.time()})})
        assert first.status_code == 201, first.text
        notice = base | {"kind": "stop_work", "ts": time.time(), "deadline": time.time() + 3600}
        again = api.post("/api/records", data={"record": json.dumps(notice)})
    assert again.status_code == 400 and again.json()["detail"]["reason"] == "replay"
    wait_until(
        lambda: sw.sql("SELECT kind FROM supervision_logs WHERE msg_id = %s", msg_id),
        timeout_s=60,
        what="the log",
    )
    assert sw.sql("SELECT id FROM notices WHERE msg_id = %s", msg_id) == []


def test_a_record_on_a_project_sitewatch_does_not_have_is_refused(sw: StackClient) -> None:
    eng = sw.new_engineer("NT")
    record = {"msg_id": "x1", "project_id": "NO-SUCH-PROJECT", "ts": time.time() - 5}
    record |= {"lat": 22.5, "lon": 113.9, "text": "整改通知", "kind": "notice"}
    record["deadline"] = time.time() + 3600
    with sw.api(token(sw, "engineer", engineer_id=eng["id"])) as api:
        r = api.post("/api/records", data={"record": json.dumps(record)})
    assert r.status_code == 400 and "no project" in r.json()["detail"]["message"], r.text
