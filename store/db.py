"""Engines are made here, from settings, never at import time."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from config.settings import Settings

# Every statement is planned for its actual parameters. asyncpg prepares statements, and after
# five executions PostgreSQL may switch to a generic plan: for our joins against `unnest` of
# array parameters that plan is a (parallel) sequential scan of the whole table (measured:
# the evidence-chain tail lookup took 89 ms at 170k entries instead of 0.2 ms), so every batch
# grew slower as evidence_entries, fixes and ingest_seen grew.
SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}


def async_engine(settings: Settings, *, pool_size: int = 5) -> AsyncEngine:
    return create_async_engine(
        settings.async_database_url,
        pool_size=pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        connect_args={"server_settings": SERVER_SETTINGS},
    )
