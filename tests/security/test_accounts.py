"""Accounts, login and the audit log (CONTRACT §6.2): people sign in with a password stored
only as Argon2id, repeated failures are slowed down, ids of every kind share one namespace,
and every change names the account or token that made it."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from live_api.auth import hash_token
from tests.stack_client import StackClient

PASSWORD = "correct horse battery staple"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _login(sw: StackClient, username: str, password: str) -> tuple[int, dict]:
    with sw.api() as api:
        r = api.post("/api/login", json={"username": username, "password": password})
    return r.status_code, {"body": r.json(), "headers": dict(r.headers)}


def _account(sw: StackClient, **body: object) -> str:
    username = str(body.pop("username", _name("acct")))
    with sw.api() as api:
        r = api.post("/api/users", json={"username": username, "password": PASSWORD, **body})
    assert r.status_code == 201, r.text
    return username


def test_a_person_signs_in_and_gets_the_scope_of_the_account(sw: StackClient) -> None:
    username = _account(sw, role="regulator", region_code="440300")
    status, answer = _login(sw, username, PASSWORD)
    assert status == 200, answer
    token = answer["body"]["token"]
    assert answer["body"]["role"] == "regulator" and answer["body"]["expires_at"]
    with sw.api(token) as api:
        assert api.get("/api/alerts").status_code == 200
        assert api.get("/api/alerts", params={"region": "310000"}).status_code == 403
        assert api.get("/api/tokens").status_code == 403  # not an admin
    with sw.api() as api:
        listed = [t for t in api.get("/api/tokens").json() if t["account"] == username]
    assert len(listed) == 1 and listed[0]["expires_at"]


def test_the_password_is_stored_only_as_argon2id(sw: StackClient) -> None:
    username = _account(sw, role="admin")
    (stored,) = sw.sql("SELECT password_hash FROM accounts WHERE username = %s", username)[0]
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    with sw.api() as api:
        listed = api.get("/api/users").json()
    assert username in [a["username"] for a in listed]
    assert all("password" not in key for a in listed for key in a)


def test_a_wrong_password_and_an_unknown_user_get_the_same_answer(sw: StackClient) -> None:
    username = _account(sw, role="admin")
    wrong = _login(sw, username, "not the password at all")
    nobody = _login(sw, _name("nobody"), "not the password at all")
    assert wrong[0] == nobody[0] == 401
    assert wrong[1]["body"] == nobody[1]["body"]


def test_repeated_failures_are_slowed_down_even_with_the_right_password(
    sw: StackClient,
) -> None:
    username = _account(sw, role="admin")
    statuses = [_login(sw, username, f"guess number {i}")[0] for i in range(5)]
    assert statuses == [401] * 5
    status, answer = _login(sw, username, PASSWORD)
    assert status == 429, answer
    assert 1 <= int(answer["headers"]["retry-after"]) <= 60
    # another account is not held back by this one's failures
    other = _account(sw, role="admin")
    assert _login(sw, other, PASSWORD)[0] == 200


def test_accounts_share_the_namespace_of_every_identity(sw: StackClient) -> None:
    engineer = _name("E-ns")
    with sw.api() as api:
        r = api.post(
            "/api/engineers",
            json={
                "id": engineer,
                "name": "Ns",
                "registered_region": "440300",
                "cert_status": "valid",
            },
        )
        assert r.status_code == 201, r.text
        for taken in (engineer, engineer.upper(), "sitewatch-admin"):
            r = api.post(
                "/api/users", json={"username": taken, "password": PASSWORD, "role": "admin"}
            )
            assert r.status_code == 409, (taken, r.text)
    username = _account(sw, role="admin")
    with sw.api() as api:
        r = api.post(
            "/api/engineers",
            json={
                "id": username,
                "name": "Clash",
                "registered_region": "440300",
                "cert_status": "valid",
            },
        )
    assert r.status_code == 409, r.text


def test_an_account_needs_the_scope_of_its_role(sw: StackClient) -> None:
    with sw.api() as api:
        for body in (
            {"role": "regulator"},
            {"role": "engineer", "engineer_id": _name("E-none")},
            {"role": "vendor", "device_ids": [_name("D-none")]},
        ):
            r = api.post("/api/users", json={"username": _name("u"), "password": PASSWORD, **body})
            assert r.status_code == 422, (body, r.text)
        r = api.post(
            "/api/users", json={"username": _name("u"), "password": "short", "role": "admin"}
        )
        assert r.status_code == 422


def test_changes_and_sign_ins_are_audited_with_a_named_actor(sw: StackClient) -> None:
    admin_token_id = sw.sql(
        "SELECT id FROM tokens WHERE token_hash = %s", hash_token(sw.admin_token)
    )[0][0]
    engineer = _name("E-audit")
    with sw.api() as api:
        api.post(
            "/api/engineers",
            json={
                "id": engineer,
                "name": "Audit",
                "registered_region": "440300",
                "cert_status": "valid",
                "id_number": "110101199003077777",
                "phone": "13800138000",
            },
        ).raise_for_status()
    username = _account(sw, role="admin")
    status, answer = _login(sw, username, PASSWORD)
    assert status == 200
    assert _login(sw, username, "wrong password here")[0] == 401
    with sw.api(answer["body"]["token"]) as api:  # the person now acts under their own name
        token_id = api.post("/api/tokens", json={"role": "admin"}).json()["id"]
        api.post(f"/api/tokens/{token_id}/revoke").raise_for_status()
    with sw.api() as api:
        created = api.get("/api/audit", params={"target": f"engineer:{engineer}"}).json()
        signed = api.get("/api/audit", params={"target": f"account:{username}"}).json()
        revoked = api.get("/api/audit", params={"actor": f"account:{username}"}).json()
    assert [(e["actor"], e["action"]) for e in created] == [
        (f"token:{admin_token_id}", "engineer.create")
    ]
    details = created[0]["details"]
    assert "110101199003077777" not in str(details) and "13800138000" not in str(details)
    assert details["id_number"].endswith("7777") and details["id_number"].startswith("*")
    assert [e["action"] for e in signed] == ["account.create", "login", "login.failed"]
    assert [e["action"] for e in revoked if e["target"] == f"token:{token_id}"] == [
        "token.create",
        "token.revoke",
    ]


def test_only_an_admin_reads_the_audit_log_and_nobody_rewrites_it(sw: StackClient) -> None:
    username = _account(sw, role="regulator", region_code="440300")
    token = _login(sw, username, PASSWORD)[1]["body"]["token"]
    with sw.api(token) as api:
        assert api.get("/api/audit").status_code == 403
    with psycopg.connect(sw.endpoints["database"], autocommit=True) as conn:
        for statement in ("DELETE FROM audit_log", "UPDATE audit_log SET actor = 'x'"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)
