"""Bearer tokens (SHA-256 hashed at rest) and what each role may see."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from devices.credentials import secret_hash
from geofence.codes import code_covers

ROLES = ("admin", "regulator", "engineer", "vendor")


def new_token() -> str:
    return "sw_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return secret_hash(token)  # SHA-256: tokens are random, like the ingest secrets


@dataclass(frozen=True)
class Caller:
    role: str
    region_code: str | None = None
    engineer_id: str | None = None
    device_ids: tuple[str, ...] = field(default_factory=tuple)

    @property
    def name(self) -> str:
        return f"{self.role}:{self.region_code or self.engineer_id or ','.join(self.device_ids) or '*'}"

    def sees_region(self, region_code: str | None) -> bool:
        if self.role == "admin":
            return True
        if self.role == "regulator":
            return (
                bool(region_code)
                and bool(self.region_code)
                and code_covers(self.region_code or "", region_code or "")
            )
        return False

    def sees(
        self,
        *,
        region_code: str | None = None,
        engineer_id: str | None = None,
        device_id: str | None = None,
    ) -> bool:
        if self.role in ("admin", "regulator"):
            return self.sees_region(region_code)
        if self.role == "engineer":
            return engineer_id is not None and engineer_id == self.engineer_id
        if self.role == "vendor":
            return device_id is not None and device_id in self.device_ids
        return False
