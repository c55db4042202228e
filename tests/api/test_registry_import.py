"""Bulk import (CONTRACT §6.3) against the running stack: XLSX and CSV, a dry run that writes
nothing, per-row errors with the row and the field, and a re-import that changes nothing."""

from __future__ import annotations

import csv
import io
import json
import uuid

import openpyxl

from tests.stack_client import StackClient

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
VALID_CODE = "91350100M000100Y43"
COLUMNS = [
    "id",
    "name",
    "registered_region",
    "cert_status",
    "employer_name",
    "employer_credit_code",
    "phone",
]


def _xlsx(rows: list[list[object]]) -> bytes:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(COLUMNS)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def test_an_xlsx_of_engineers_is_checked_row_by_row_and_imported_once(sw: StackClient) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    good = [
        [
            f"IM-{tag}-{i:03d}",
            f"导入{i}",
            "440305",
            "valid",
            "监理公司",
            VALID_CODE,
            13800000000 + i,
        ]
        for i in range(40)
    ]
    bad = [
        [f"IM-{tag}-X1", "坏代码", "440305", "valid", "x", VALID_CODE[:-1] + "4", None],  # row 42
        [f"IM-{tag}-X2", None, "440305", "valid", None, None, None],  # row 43: no name
        [f"IM-{tag}-000", "重复", "440305", "valid", None, None, None],  # row 44: id of row 2
        [f"IM-{tag}-X4", "状态", "440305", "revoked", None, None, None],  # row 45
    ]
    content = _xlsx(good + bad)
    headers = {"Content-Type": XLSX}
    url = "/api/import/engineers"
    with sw.api() as api:
        dry = api.post(url, content=content, headers=headers, params={"dry_run": "true"})
        assert dry.status_code == 200, dry.text
        assert (dry.json()["created"], dry.json()["dry_run"]) == (40, True)
        assert api.get(f"/api/engineers/IM-{tag}-000").status_code == 404  # nothing written
        first = api.post(url, content=content, headers=headers).json()
        again = api.post(url, content=content, headers=headers).json()
        shown = api.get(f"/api/engineers/IM-{tag}-007").json()
        history = api.get(f"/api/engineers/IM-{tag}-007/changes").json()
    assert [(e["row"], e["field"]) for e in first["errors"]] == [
        (42, "employer_credit_code"),
        (43, "name"),
        (44, "id"),
        (45, "cert_status"),
    ]
    assert "row 2" in first["errors"][2]["message"]
    assert (first["created"], first["updated"], first["unchanged"]) == (40, 0, 0)
    assert (again["created"], again["updated"], again["unchanged"]) == (0, 0, 40)
    assert shown["name"] == "导入7" and shown["phone"].endswith("0007")
    assert shown["employer"]["credit_code"] == VALID_CODE
    assert len(history) == 1 and history[0]["changes"]["name"] == [None, "导入7"]


def test_a_csv_row_that_changed_updates_its_engineer_and_filings_import_once(
    sw: StackClient,
) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    rows = "\n".join(f"IM-{tag}-{i},名{i},440305,valid" for i in range(3))
    csv_body = f"id,name,registered_region,cert_status\n{rows}\n".encode()
    headers = {"Content-Type": "text/csv"}
    filings = (
        "engineer_id,region_code,valid_from,valid_to\n"
        f"IM-{tag}-0,440100,2026-01-01,2026-12-31\n"
        f"IM-{tag}-1,440100,2026-01-01,2026-12-31\n"
        f"NOBODY-{tag},440100,2026-01-01,2026-12-31\n"
    ).encode()
    with sw.api() as api:
        assert (
            api.post("/api/import/engineers", content=csv_body, headers=headers).json()["created"]
            == 3
        )
        changed = csv_body.replace(
            f"IM-{tag}-1,名1,440305,valid".encode(), f"IM-{tag}-1,名1,440305,suspended".encode()
        )
        result = api.post("/api/import/engineers", content=changed, headers=headers).json()
        eng = api.get(f"/api/engineers/IM-{tag}-1").json()
        f1 = api.post("/api/import/filings", content=filings, headers=headers).json()
        f2 = api.post("/api/import/filings", content=filings, headers=headers).json()
        listed = api.get("/api/filings", params={"engineer_id": f"IM-{tag}-0"}).json()
        unknown = api.post("/api/import/engineers", content=b"id,colour\nA,red\n", headers=headers)
        garbage = api.post(
            "/api/import/engineers", content=b"PK\x03\x04not a zip", headers={"Content-Type": XLSX}
        )
    assert (result["updated"], result["unchanged"]) == (1, 2)
    assert eng["cert_status"] == "suspended"
    assert (f1["created"], [e["row"] for e in f1["errors"]]) == (2, [4])
    assert (f2["created"], f2["unchanged"]) == (0, 2)
    assert len(listed) == 1
    assert unknown.status_code == 422 and "colour" in unknown.text
    assert garbage.status_code == 422 and "XLSX" in garbage.text


def test_projects_import_from_wkt_or_geojson_once(sw: StackClient) -> None:
    tag = uuid.uuid4().hex[:6].upper()
    lon, lat = sw.free_spot(114.03, 22.60)
    d = 0.001
    wkt = (
        f"POLYGON(({lon - d} {lat - d},{lon + d} {lat - d},{lon + d} {lat + d},"
        f"{lon - d} {lat + d},{lon - d} {lat - d}))"
    )
    geojson = json.dumps(
        {
            "type": "Polygon",
            "coordinates": [
                [[lon + 0.01, lat], [lon + 0.012, lat], [lon + 0.012, lat + d], [lon + 0.01, lat]]
            ],
        }
    )
    bow_tie = (
        f"POLYGON(({lon} {lat},{lon + d} {lat + d},{lon + d} {lat},{lon} {lat + d},{lon} {lat}))"
    )
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["id", "name", "region_code", "engineer_ids", "required_days_per_month", "geometry"]
    )
    writer.writerow([f"IP-{tag}-A", "导入工地A", "440305", "E-1; E-2", "10", wkt])
    writer.writerow([f"IP-{tag}-B", "导入工地B", "440305", "", "", geojson])
    writer.writerow([f"IP-{tag}-C", "坏边界", "440305", "", "", bow_tie])  # row 4
    body = out.getvalue().encode()
    headers = {"Content-Type": "text/csv"}
    url = "/api/import/projects"
    with sw.api() as api:
        dry = api.post(url, content=body, headers=headers, params={"dry_run": "true"}).json()
        assert api.get(f"/api/projects/IP-{tag}-A").status_code == 404
        first = api.post(url, content=body, headers=headers).json()
        again = api.post(url, content=body, headers=headers).json()
        a = api.get(f"/api/projects/IP-{tag}-A").json()
        renamed = api.post(
            url, content=body.replace("导入工地B".encode(), "改名".encode()), headers=headers
        ).json()
    assert (dry["created"], first["created"], again["created"], again["unchanged"]) == (2, 2, 0, 2)
    assert [e["row"] for e in first["errors"]] == [4] and "self-intersection" in first["errors"][0][
        "message"
    ].lower()
    assert a["properties"]["engineer_ids"] == ["E-1", "E-2"]
    assert a["properties"]["required_days_per_month"] == 10
    assert [e["row"] for e in renamed["errors"]] == [3, 4] and "PATCH" in renamed["errors"][0][
        "message"
    ]
