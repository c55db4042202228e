"""schemathesis against the running stack's `/openapi.json`, with the admin token: every
operation (the ingest routes included), examples + coverage + fuzzing phases, about 25
generated cases each. It must find no 5xx, no undocumented status code or content type, no
response contradicting its schema, and no operation that ignores a missing token.

Not checked, on purpose (docs/registry.md): `positive_data_acceptance` (schema-valid bodies
may still be refused with 422 for what a schema cannot say: a self-intersecting polygon, an
unknown project id, valid_to before valid_from) and `negative_data_rejection` (pydantic's lax
mode accepts e.g. `0` for a date), `unsupported_method` (Starlette answers 405 for one route
of a path).

The stack is shared with the rest of the session, so generated data must not change what
other tests see: bodies that would create a project fence or import region boundaries over
China are not sent (they are covered by tests/api/test_registry.py with fixed data).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import psycopg
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (  # type: ignore[attr-defined]  # registered checks
    content_type_conformance,
    ignored_auth,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from config.settings import Settings
from live_api.app import create_app
from tests.stack_client import StackClient

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    ignored_auth,
]
CHINA = (73.0, 3.0, 136.0, 54.0)  # lon/lat bounding box


# The document the stack serves, built in-process at collection time (create_app does nothing
# until it is started), so that every operation is its own pytest item; the first test proves
# it is the one the running stack serves. (`schemathesis.pytest.from_fixture` would load it
# from the stack at run time but does not work with pytest 9.)
DOCUMENT = json.loads(json.dumps(create_app(Settings()).openapi()))
schema = schemathesis.openapi.from_dict(DOCUMENT)


def test_the_stack_serves_this_document(sw: StackClient) -> None:
    served = httpx.get(sw.http + "/openapi.json", timeout=60)
    assert served.status_code == 200
    assert served.json() == DOCUMENT
    operations = [op for path in DOCUMENT["paths"].values() for op in path.values()]
    api = [
        op for p, ops in DOCUMENT["paths"].items() if p.startswith("/api/") for op in ops.values()
    ]
    assert len(operations) >= 20
    for op in api:  # bearer auth (but to sign in), tags and the error answers on every /api op
        signing_in = op is DOCUMENT["paths"]["/api/login"]["post"]
        assert op["security"] == ([] if signing_in else [{"HTTPBearer": []}]), op["operationId"]
        assert op["tags"], op["operationId"]
        assert {"401", "403", "422"} <= set(op["responses"]), op["operationId"]


def _numbers(value: Any) -> list[float]:
    if isinstance(value, bool):
        return []
    if isinstance(value, int | float):
        return [float(value)]
    if isinstance(value, list):
        return [n for v in value for n in _numbers(v)]
    return []


def _touches_china(geometry: Any) -> bool:
    """True unless the geometry's coordinates are clearly away from China (or unusable)."""
    if not isinstance(geometry, dict):
        return False
    flat = _numbers(geometry.get("coordinates"))
    if len(flat) < 2:
        return False
    lons, lats = flat[0::2], flat[1::2]
    x0, y0, x1, y1 = CHINA
    return not (max(lons) < x0 or min(lons) > x1 or max(lats) < y0 or min(lats) > y1)


def would_change_shared_state(case: Any) -> bool:
    body = case.body
    if case.method.upper() != "POST" or not isinstance(body, dict):
        return False
    if case.path == "/api/projects":
        return _touches_china(body.get("geometry"))
    if case.path == "/api/regions/import":
        features = body.get("features")
        return isinstance(features, list) and any(
            isinstance(f, dict) and isinstance(f.get("geometry"), dict) for f in features
        )
    return False


def revokes_a_live_token(case: Any, sw: StackClient) -> bool:
    """The session's tokens (the admin's first) must outlive the run: ids of live tokens are
    not revoked here (tests/api/test_token_lifecycle.py revokes its own)."""
    if not case.path.startswith("/api/tokens/") or not case.path.endswith("/revoke"):
        return False
    token_id = (case.path_parameters or {}).get("token_id")
    if not isinstance(token_id, int) or not -(2**63) <= token_id < 2**63:
        return False
    return bool(sw.sql("SELECT 1 FROM tokens WHERE id = %s AND revoked_at IS NULL", token_id))


# the registry objects other tests made: changed or retired only by the tests that own them
LIVE_OBJECTS = {
    "filing_id": "SELECT 1 FROM filings WHERE id = %s",
    "engineer_id": "SELECT 1 FROM engineers WHERE id = %s",
    "device_id": "SELECT 1 FROM devices WHERE id = %s",
    "project_id": "SELECT 1 FROM projects WHERE id = %s",
}


def changes_a_live_object(case: Any, sw: StackClient) -> bool:
    """A change (PATCH, DELETE, a POST below the object) of an object that exists."""
    if case.method.upper() == "GET":
        return False
    for name, query in LIVE_OBJECTS.items():
        value = (case.path_parameters or {}).get(name)
        if isinstance(value, bool) or not isinstance(value, int | str):
            continue
        if isinstance(value, int) and not -(2**63) <= value < 2**63:
            continue
        try:
            if sw.sql(query, value):
                return True
        except psycopg.Error:  # a value the column cannot hold names nothing that exists
            continue
    return False


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_conforms_to_its_openapi(case: Any, sw: StackClient) -> None:
    if (
        would_change_shared_state(case)
        or revokes_a_live_token(case, sw)
        or changes_a_live_object(case, sw)
    ):
        return
    case.call_and_validate(
        base_url=sw.http,
        headers={"Authorization": f"Bearer {sw.admin_token}"},
        checks=CHECKS,
        timeout=60,
    )
