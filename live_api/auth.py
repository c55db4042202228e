"""Bearer tokens (SHA-256 hashed at rest), account passwords (Argon2id), and what each role
may see."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from devices.credentials import secret_hash
from geofence.codes import code_covers

ROLES = ("admin", "regulator", "engineer", "vendor")


def new_token() -> str:
    return "sw_" + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return secret_hash(token)  # SHA-256: tokens are random, like the ingest secrets


# argon2-cffi's defaults: RFC 9106's second recommended profile (Argon2id, 64 MiB, 3 passes)
_hasher = PasswordHasher()
# verified when the username is unknown, so the time taken does not tell which names exist
_UNKNOWN_USER_HASH = _hasher.hash(secrets.token_urlsafe(16))


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(password_hash: str | None, password: str) -> bool:
    """Argon2id verification; it takes as long for an unknown account (`None`)."""
    try:
        return _hasher.verify(password_hash or _UNKNOWN_USER_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def actor_name(*, account: str | None, token_id: int | None) -> str:
    """Who acted, as recorded in alert histories and the audit log: the account that logged in,
    else the machine token's id (CONTRACT §6.2: never only a role)."""
    return f"account:{account}" if account else f"token:{token_id}"


@dataclass(frozen=True)
class Caller:
    role: str
    region_code: str | None = None
    engineer_id: str | None = None
    device_ids: tuple[str, ...] = field(default_factory=tuple)
    actor: str = ""

    @property
    def name(self) -> str:
        return self.actor or f"{self.role}:{self.region_code or self.engineer_id or '*'}"

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
