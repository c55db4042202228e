"""Engines are made here, from settings, never at import time."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from stack.settings import Settings


def async_engine(settings: Settings, *, pool_size: int = 5) -> AsyncEngine:
    return create_async_engine(
        settings.async_database_url, pool_size=pool_size, max_overflow=10, pool_pre_ping=True
    )
