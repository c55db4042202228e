"""No token but an admin's learns whether an id exists (issue "Secure by default"): an unknown
engineer, project, device or alert answers exactly as one outside the caller's region or role,
403 with the same sentence; an admin still gets 404."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import FUTIAN, feature, register_engineer, spot, tag, token
from tests.stack_client import StackClient


@pytest.fixture(scope="module")
def elsewhere(sw: StackClient, regions: dict[str, Any]) -> dict[str, str]:
    """An engineer, a project and a device in 福田区 (440304)."""
    t = tag()
    ids = {"engineer": f"OR-E-{t}", "project": f"OR-P-{t}", "device": f"OR-D-{t}"}
    register_engineer(sw, ids["engineer"], FUTIAN[0])
    with sw.api() as api:
        r = api.post("/api/projects", json=feature(ids["project"], *spot(FUTIAN)))
        assert r.status_code == 201, r.text
        r = api.post(
            "/api/devices",
            json={
                "id": ids["device"],
                "project_id": ids["project"],
                "kind": "env",
                "report_interval_s": 60,
            },
        )
        assert r.status_code == 201, r.text
    return ids


def _calls(ids: dict[str, str]) -> list[tuple[str, str, dict[str, Any] | None]]:
    e, p, d = ids["engineer"], ids["project"], ids["device"]
    return [
        ("GET", f"/api/engineers/{e}", None),
        ("GET", f"/api/engineers/{e}/track", None),
        ("GET", f"/api/engineers/{e}/credit", None),
        ("GET", f"/api/engineers/{e}/evidence", None),
        ("GET", f"/api/engineers/{e}/evidence/verify", None),
        ("GET", f"/api/engineers/{e}/history", None),
        ("GET", f"/api/map/engineers/{e}", None),
        ("GET", f"/api/projects/{p}", None),
        ("GET", f"/api/devices/{d}", None),
        ("POST", "/api/eligibility", {"engineer_id": e, "project_id": p, "role": "member"}),
    ]


def _answers(sw: StackClient, tok: str | None, ids: dict[str, str]) -> list[tuple[int, str]]:
    out = []
    with sw.api(tok) as api:
        for method, path, body in _calls(ids):
            r = api.request(method, path, json=body)
            detail = str(r.json().get("detail"))
            for ident in ids.values():  # the sentence names the id asked for
                detail = detail.replace(ident, "ID")
            out.append((r.status_code, detail))
    return out


@pytest.mark.parametrize("role", ["regulator", "engineer"])
def test_unknown_ids_answer_like_ids_outside_the_scope(
    sw: StackClient, elsewhere: dict[str, str], role: str
) -> None:
    scope = {
        "regulator": {"region_code": "440305"},
        "engineer": {"engineer_id": register_and_return(sw)},
    }[role]
    tok = token(sw, role, **scope)
    unknown = {k: f"{v}-NOT-THERE" for k, v in elsewhere.items()}
    real = _answers(sw, tok, elsewhere)
    fake = _answers(sw, tok, unknown)
    assert all(status == 403 for status, _ in real), real
    assert fake == real


def test_an_admin_still_gets_404(sw: StackClient, elsewhere: dict[str, str]) -> None:
    unknown = {k: f"{v}-NOT-THERE" for k, v in elsewhere.items()}
    statuses = [status for status, _ in _answers(sw, None, unknown)]
    assert set(statuses) == {404}, statuses


def register_and_return(sw: StackClient) -> str:
    eid = f"OR-ME-{tag()}"
    register_engineer(sw, eid, FUTIAN[0])
    return eid
