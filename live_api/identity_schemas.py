"""Request and response bodies of tokens, accounts and the audit log (CONTRACT §2, §6.2)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from live_api.schemas import Id, RegionCode

# --- tokens --------------------------------------------------------------------------------


class TokenCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"role": "regulator", "region_code": "440300"}]}
    )
    role: Literal["admin", "regulator", "engineer", "vendor"]
    region_code: RegionCode | None = Field(
        default=None, description="regulator: the region it may see"
    )
    engineer_id: Id | None = Field(default=None, description="engineer: whose data it may see")
    device_ids: list[Id] | None = Field(
        default=None, max_length=10_000, description="vendor: the devices it may see"
    )
    expires_in_s: int | None = Field(
        default=None,
        ge=60,
        le=10 * 365 * 86400,
        description="seconds until it expires (none: until revoked)",
    )


class TokenOut(BaseModel):
    token: str = Field(description="shown once; only its SHA-256 is stored")
    role: str
    id: int = Field(description="what `GET /api/tokens` and revocation name it by")
    expires_at: dt.datetime | None = None


class TokenInfo(BaseModel):
    """A token as the admin sees it later: never the token itself."""

    id: int
    role: str
    region_code: str | None
    engineer_id: str | None
    device_ids: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    revoked_at: dt.datetime | None
    account: str | None = Field(default=None, description="the account that logged in for it")


# --- accounts and the audit log (CONTRACT §6.2) ---------------------------------------------

Password = Annotated[str, Field(min_length=12, max_length=256, description="12 to 256 characters")]


class AccountCreate(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "username": "wang.li",
                    "password": "correct horse battery",
                    "role": "regulator",
                    "region_code": "440300",
                }
            ]
        }
    )
    username: Id
    password: Password
    role: Literal["admin", "regulator", "engineer", "vendor"]
    region_code: RegionCode | None = None
    engineer_id: Id | None = None
    device_ids: list[Id] | None = Field(default=None, max_length=10_000)


class AccountOut(BaseModel):
    username: str
    role: str
    region_code: str | None
    engineer_id: str | None
    device_ids: list[str]
    created_at: dt.datetime


class Login(BaseModel):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginOut(BaseModel):
    token: str = Field(description="a bearer token for this account, shown once")
    expires_at: dt.datetime
    role: str


class AuditOut(BaseModel):
    at: dt.datetime
    actor: str = Field(description="`account:<username>` or `token:<id>`")
    action: str
    target: str
    details: dict[str, Any]
