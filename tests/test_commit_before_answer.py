"""A 201 means the row is committed: a client may act on it at once (regression: the
transaction used to commit after the response was sent)."""

from __future__ import annotations

import uuid

from tests.stack_client import StackClient


def test_registered_engineer_is_visible_as_soon_as_the_answer_arrives(sw: StackClient) -> None:
    with sw.api() as api:
        for _ in range(10):
            engineer_id = f"CBA-{uuid.uuid4().hex[:8]}"
            r = api.post(
                "/api/engineers",
                json={
                    "id": engineer_id,
                    "name": "x",
                    "registered_region": "440305",
                    "cert_status": "valid",
                },
            )
            assert r.status_code == 201, r.text
            assert sw.sql("SELECT id FROM engineers WHERE id = %s", engineer_id) == [(engineer_id,)]
            filing = {
                "engineer_id": engineer_id,
                "region_code": "440100",
                "valid_from": "2026-01-01",
                "valid_to": "2026-12-31",
            }
            assert api.post("/api/filings", json=filing).status_code == 201
