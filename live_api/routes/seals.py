"""Sealing the evidence chains on demand (live_api.sealer seals them periodically)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from live_api import audit
from live_api.deps import Admin, Conn

router = APIRouter(prefix="/api")


class SealOut(BaseModel):
    file: str | None = Field(description="the seal written; null when no chain moved")
    heads: int = Field(description="chain heads in it")
    public_key: str = Field(description="the SM2 key that verifies the seals (hex x||y)")


@router.post("/evidence/seal", response_model=SealOut, tags=["evidence"])
async def seal_now(request: Request, conn: Conn, admin: Admin) -> Any:
    """Admin only. Seal the final head of every chain that moved since the last seal now (for
    instance before a backup or an export), instead of waiting for the next round."""
    sealer = request.app.state.sealer
    path, heads = await sealer.seal_once()
    await audit.record(conn, admin, "evidence.seal", "evidence", file=path and path.name)
    return SealOut(file=path.name if path else None, heads=heads, public_key=sealer.key.public_hex)
