"""Practice records over HTTP with their files (CONTRACT §6.4) against the running stack: the
files kept by their SM3 and chained with the record, a photo taken 5 km away flagged, a file
altered afterwards breaking the engineer's evidence at that entry, hostile uploads refused
with a reason and never a 5xx."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from categories.model import CATEGORIES
from gm.algorithms import sm3_hex
from tests.api.conftest import token
from tests.api.test_notices import LiveMessages
from tests.attachments.files import jpeg, pdf, png_claiming
from tests.stack_client import StackClient, site, wait_until

pytestmark = pytest.mark.stack


def _record(
    project_id: str, lon: float, lat: float, files: list[tuple[bytes, str]] | None = None
) -> dict[str, Any]:
    """The record's JSON; `files` names the files (else the server adds `attachments`)."""
    out: dict[str, Any] = {
        "msg_id": f"rec-{uuid.uuid4().hex[:10]}",
        "project_id": project_id,
        "ts": round(time.time()) - 60,
        "lat": lat,
        "lon": lon,
        "kind": "inspection",
        "text": "巡视检查：脚手架连墙件缺失，已要求整改。",
    }
    if files is not None:
        out["files"] = [{"sm3": sm3_hex(d), "type": t, "bytes": len(d)} for d, t in files]
    return out


def _upload(
    sw: StackClient,
    token: str,
    record: dict[str, Any] | None,
    files: list[tuple[bytes, str]],
) -> httpx.Response:
    data = {"record": json.dumps(record, ensure_ascii=False)} if record is not None else {}
    parts = [
        ("document" if t == "application/pdf" else "photo", (f"f{k}", d, t))
        for k, (d, t) in enumerate(files)
    ]
    with sw.api(token) as client:
        return client.post("/api/records", data=data, files=parts or None)


def _engineer_token(sw: StackClient) -> tuple[dict[str, Any], str]:
    eng = sw.new_engineer("PR")
    return eng, token(sw, "engineer", engineer_id=eng["id"])


@pytest.fixture
def place(sw: StackClient) -> tuple[str, float, float]:
    project_id = f"PR-{uuid.uuid4().hex[:6]}"
    lon, lat = sw.free_spot(113.93, 22.53)
    with sw.api() as api:
        assert api.post("/api/projects", json=site(project_id, lon, lat)).status_code == 201
    return project_id, lon, lat


def test_a_record_with_photos_is_chained_and_an_altered_file_breaks_the_chain_there(
    sw: StackClient, place: tuple[str, float, float]
) -> None:
    project_id, lon, lat = place
    eng, bearer = _engineer_token(sw)
    near = jpeg(lon_lat=(lon, lat))
    far = jpeg(lon_lat=(lon + 5000 / 102_800, lat), colour=(10, 20, 30))  # 5 km east
    report = pdf()
    files = [(near, "image/jpeg"), (far, "image/jpeg"), (report, "application/pdf")]
    record = _record(project_id, lon, lat)  # the server names the files
    r = _upload(sw, bearer, record, files)
    assert r.status_code == 201, r.text
    answer = r.json()
    assert (answer["id"], answer["kind"]) == (f"{eng['id']}:{record['msg_id']}", "inspection")
    assert [(a["sm3"], a["size"], a["content_type"]) for a in answer["attachments"]] == [
        (sm3_hex(d), len(d), t) for d, t in files
    ]
    [flag] = answer["flags"]
    assert flag.startswith(f"exif_far:{sm3_hex(far)}:") and 4900 < int(flag.split(":")[2]) < 5100

    def stored() -> list[tuple[Any, ...]]:
        return sw.sql(
            "SELECT kind, files, flags FROM supervision_logs WHERE msg_id = %s", record["msg_id"]
        )

    [(kind, kept, flags)] = wait_until(stored, timeout_s=90, what="the record")
    assert (kind, [f["sm3"] for f in kept], flags) == (
        "inspection",
        [sm3_hex(d) for d, _ in files],
        [flag],
    )
    files_dir = Path(sw.endpoints["data_dir"]) / "files"
    for data, _ in files:
        assert (files_dir / sm3_hex(data)[:2] / sm3_hex(data)).read_bytes() == data

    def verified() -> dict[str, Any]:
        with sw.api() as api:
            return dict(api.get(f"/api/engineers/{eng['id']}/evidence/verify").json())

    assert wait_until(lambda: verified()["entries"] == 1, timeout_s=60, what="the chain entry")
    assert verified()["ok"] is True
    # read back: the engineer's own records and files; a regulator of the project's region
    # too, one of another region neither
    with sw.api(bearer) as api:
        [listed] = api.get("/api/records", params={"project_id": project_id}).json()
        photo = api.get(f"/api/attachments/{sm3_hex(far)}")
        assert api.get(f"/api/attachments/{'0' * 64}").status_code == 404
        assert api.get("/api/attachments/not-an-sm3").status_code == 422
    assert (listed["id"], listed["kind"], listed["flags"]) == (answer["id"], "inspection", [flag])
    # the worker stored the category the API answered (one model, trained the same way)
    assert answer["category"] in CATEGORIES and listed["category"] == answer["category"]
    assert (photo.status_code, photo.content, photo.headers["content-type"]) == (
        200,
        far,
        "image/jpeg",
    )
    with sw.api(token(sw, "regulator", region_code="440305")) as api:
        assert [
            r["id"] for r in api.get("/api/records", params={"project_id": project_id}).json()
        ] == [answer["id"]]
        assert api.get(f"/api/attachments/{sm3_hex(report)}").content == report
    with sw.api(token(sw, "regulator", region_code="440304")) as api:
        assert api.get("/api/records", params={"project_id": project_id}).json() == []
        assert api.get(f"/api/attachments/{sm3_hex(report)}").status_code == 404  # not told
    # the PDF report changed on disk afterwards: the chain breaks at that record's entry
    (files_dir / sm3_hex(report)[:2] / sm3_hex(report)).write_bytes(pdf(b"BT (forged) Tj ET"))
    broken = verified()
    assert (broken["ok"], broken["broken_at"]) == (False, 1)
    why = broken["broken"]
    assert (why["reason"], why["msg_id"]) == ("file_mismatch", record["msg_id"])
    assert "altered" in why["message"]


@pytest.mark.parametrize(
    ("files", "listed", "why"),
    [
        ([(b"MZ" + b"\0" * 64, "image/jpeg")], None, "not a JPEG, PNG or PDF"),
        ([(b"", "image/jpeg")], None, "the file is empty"),
        ([(png_claiming(100_000, 100_000), "image/png")], None, "too large"),
        ([(pdf(b"0" * 40_000_000, deflate=True), "application/pdf")], None, "inflate"),
        ([(jpeg(), "image/jpeg")], [], "not named"),
        ([], [(jpeg(), "image/jpeg")], "named but not uploaded"),
        ([(jpeg(), "image/jpeg")], [(jpeg(), "image/png")], "the record says"),
    ],
    ids=["exe", "empty", "gigapixel", "pdf-bomb", "unnamed", "not-uploaded", "wrong-type"],
)
def test_a_hostile_upload_is_refused_with_its_reason(
    sw: StackClient,
    place: tuple[str, float, float],
    files: list[tuple[bytes, str]],
    listed: list[tuple[bytes, str]] | None,
    why: str,
) -> None:
    project_id, lon, lat = place
    _eng, bearer = _engineer_token(sw)
    record = _record(project_id, lon, lat, files if listed is None else listed)
    r = _upload(sw, bearer, record, files)
    assert r.status_code == 400, r.text
    detail = r.json()["detail"]
    assert detail["reason"] in ("bad_file", "out_of_range") and why in detail["message"], detail


def test_an_upload_by_someone_else_or_without_a_record_is_refused(
    sw: StackClient, place: tuple[str, float, float]
) -> None:
    project_id, lon, lat = place
    eng, bearer = _engineer_token(sw)
    files = [(jpeg(), "image/jpeg")]
    record = _record(project_id, lon, lat) | {"engineer_id": eng["id"]}
    with httpx.Client(base_url=sw.http, timeout=60) as anonymous:
        assert anonymous.post("/api/records", data={"record": "{}"}).status_code == 401
    regulator = token(sw, "regulator", region_code="440305")
    assert _upload(sw, regulator, record, files).status_code == 403
    missing = _upload(sw, bearer, None, files)
    assert missing.status_code == 400 and missing.json()["detail"]["reason"] == "missing_field"
    other = _record(project_id, lon, lat) | {"engineer_id": "SOMEONE-ELSE"}
    mismatch = _upload(sw, bearer, other, files)
    assert mismatch.status_code == 400
    assert mismatch.json()["detail"]["reason"] == "topic_mismatch"
    pdf_as_photo = _upload(sw, bearer, record, [(pdf(), "image/jpeg")])
    assert pdf_as_photo.status_code == 400 and "a photo is" in pdf_as_photo.text
    with sw.api(bearer) as client:
        for ctype, body in (
            ("multipart/form-data; boundary=xyz", b"--xyz\r\ngarbage\r\n"),
            ("multipart/form-data", b"no boundary at all"),
            ("application/json", b'{"msg_id": "x"}'),
            (  # a charset that decodes to a lone surrogate
                "multipart/form-data; boundary=xyz; charset=utf-7",
                b'--xyz\r\nContent-Disposition: form-data; name="record"\r\n'
                b"Content-Type: text/plain; charset=utf-7\r\n\r\n"
                b'{"text": "+2AA-"}\r\n--xyz--\r\n',
            ),
        ):
            r = client.post("/api/records", content=body, headers={"content-type": ctype})
            assert r.status_code in (400, 422), (ctype, r.status_code, r.text)


def test_a_new_record_is_pushed_live_without_its_files(
    sw: StackClient, place: tuple[str, float, float]
) -> None:
    project_id, lon, lat = place
    eng, bearer = _engineer_token(sw)
    files = [(jpeg(), "image/jpeg")]
    record = _record(project_id, lon, lat)
    with LiveMessages(sw.ws_url(token(sw, "regulator", region_code="440305")), "record") as live:
        assert _upload(sw, bearer, record, files).status_code == 201
        [message] = wait_until(
            lambda: [m for m in live.messages if m["id"] == f"{eng['id']}:{record['msg_id']}"],
            timeout_s=60,
            what="the live record",
        )
    assert (message["kind"], message["project_id"], message["region_code"]) == (
        "inspection",
        project_id,
        "440305",
    )
    assert message["files"] == 1 and "sm3" not in json.dumps(message)


def test_a_record_written_away_from_its_project_is_flagged(
    sw: StackClient, place: tuple[str, float, float]
) -> None:
    """The project is a square of ±0.001° (about 100 m) around its centre; a record 0.01°
    east (about a kilometre) is outside it, one at the centre is not."""
    project_id, lon, lat = place
    _eng, bearer = _engineer_token(sw)
    away, here = _record(project_id, lon + 0.01, lat), _record(project_id, lon, lat)
    for record in (away, here):
        assert _upload(sw, bearer, record, []).status_code == 201

    def flags() -> dict[str, list[str]] | None:
        rows = sw.sql(
            "SELECT msg_id, flags FROM supervision_logs WHERE msg_id = ANY(%s)",
            [away["msg_id"], here["msg_id"]],
        )
        return dict(rows) if len(rows) == 2 else None

    assert wait_until(flags, timeout_s=60, what="the records") == {
        away["msg_id"]: ["outside_project"],
        here["msg_id"]: [],
    }
