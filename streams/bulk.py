"""Bulk idempotent inserts: `INSERT ... SELECT ... FROM unnest(one array per column) ON
CONFLICT DO NOTHING`. A chunk of rows is one statement with one parameter per column, so
its cost is one round trip and the server's work, whatever the number of rows (a multi-row
VALUES list binds rows x columns parameters). Column types come from the SQLAlchemy table:
geometry travels as EWKT text (ST_GeomFromEWKT), text[] as an array literal, jsonb as text.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import orjson
from geoalchemy2 import Geometry
from sqlalchemy import Date, DateTime, Float, Integer, String, text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncConnection

CHUNK = 20_000  # rows per statement
VALUES_CHUNK = 1000  # rows per statement of the VALUES fallback

_ARRAY_OF = {"geometry": "text", "text_array": "text", "jsonb": "text"}
_EXPR = {
    "geometry": "ST_GeomFromEWKT(u.{c})",
    "text_array": "CAST(u.{c} AS text[])",
    "jsonb": "CAST(u.{c} AS jsonb)",
}


async def insert_new(conn: AsyncConnection, model: Any, rows: Sequence[dict[str, Any]]) -> int:
    """Insert the rows whose primary key is not there yet; returns how many were new. Every
    row has the keys of the first; columns left out take their server defaults."""
    return sum(result.rowcount or 0 for result in await _insert(conn, model, rows, ()))


async def insert_new_keys(
    conn: AsyncConnection, model: Any, rows: Sequence[dict[str, Any]], keys: tuple[str, ...]
) -> set[tuple[Any, ...]]:
    """`insert_new`, returning the `keys` columns of the rows that were new."""
    return {tuple(row) for result in await _insert(conn, model, rows, keys) for row in result}


async def _insert(
    conn: AsyncConnection, model: Any, rows: Sequence[dict[str, Any]], returning: tuple[str, ...]
) -> list[Any]:
    """The statements' results, one per chunk (unnest, or VALUES for unmapped types)."""
    if not rows:
        return []
    table = model.__table__
    columns = tuple(rows[0])
    try:
        sql, kinds = _statement(table, columns, returning)
    except KeyError:  # a column type without an array mapping
        return await _insert_values(conn, model, rows, returning)
    results = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        params = {
            f"c{i}": [_param(kind, r.get(c)) for r in chunk]
            for i, (c, kind) in enumerate(zip(columns, kinds, strict=True))
        }
        results.append(await conn.execute(sql, params))
    return results


async def insert_values(conn: AsyncConnection, model: Any, rows: Sequence[dict[str, Any]]) -> int:
    """The same with multi-row VALUES (kept for types unnest does not map, and to compare)."""
    return sum(result.rowcount or 0 for result in await _insert_values(conn, model, rows, ()))


async def _insert_values(
    conn: AsyncConnection, model: Any, rows: Sequence[dict[str, Any]], returning: tuple[str, ...]
) -> list[Any]:
    results = []
    for start in range(0, len(rows), VALUES_CHUNK):
        statement: Any = pg_insert(model).values(list(rows[start : start + VALUES_CHUNK]))
        statement = statement.on_conflict_do_nothing()
        if returning:
            statement = statement.returning(*(model.__table__.c[k] for k in returning))
        results.append(await conn.execute(statement))
    return results


def _kind(type_: Any) -> str:
    if isinstance(type_, Geometry):
        return "geometry"
    if isinstance(type_, ARRAY):
        return "text_array"
    if isinstance(type_, JSONB):
        return "jsonb"
    if isinstance(type_, DateTime):
        return "timestamptz"
    if isinstance(type_, Date):
        return "date"
    if isinstance(type_, Float):
        return "float8"
    if isinstance(type_, Integer):  # BigInteger too
        return "int8"
    if isinstance(type_, String):  # Text too
        return "text"
    raise KeyError(type(type_).__name__)


@functools.lru_cache(maxsize=64)
def _statement(
    table: Any, columns: tuple[str, ...], returning: tuple[str, ...] = ()
) -> tuple[Any, tuple[str, ...]]:
    kinds = tuple(_kind(table.c[c].type) for c in columns)
    arrays = ", ".join(f"CAST(:c{i} AS {_ARRAY_OF.get(k, k)}[])" for i, k in enumerate(kinds))
    exprs = ", ".join(
        _EXPR.get(k, "u.{c}").format(c=c) for c, k in zip(columns, kinds, strict=True)
    )
    names = ", ".join(columns)
    sql = text(
        f"INSERT INTO {table.name} ({names}) SELECT {exprs} "
        f"FROM unnest({arrays}) AS u({names}) ON CONFLICT DO NOTHING"
        + (f" RETURNING {', '.join(returning)}" if returning else "")
    )
    return sql, kinds


def _param(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if kind == "text_array":
        return array_literal(value)
    if kind == "jsonb":
        return orjson.dumps(value).decode()
    if kind == "float8" and isinstance(value, int):
        return float(value)
    return value


def array_literal(values: Sequence[Any]) -> str:
    """A PostgreSQL text[] literal: every element double-quoted, `\\` and `"` escaped."""
    quoted = (str(v).replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return "{" + ",".join(f'"{q}"' for q in quoted) + "}"
