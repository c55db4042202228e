"""The HTTP boundary: every request's path, query and JSON body is checked once, before any
route sees it, with the same text rules as the ingest codecs (wire.fields.check_text).

- path and query parameters holding control characters, lone surrogates or non-characters:
  422 naming the parameter (the ingest routes check their own, so the rejection is logged);
- bodies larger than their route's limit: 413 (read no further than the limit);
- JSON bodies: nested deeper than ``MAX_JSON_DEPTH``, or holding a forbidden character in a
  key or a string: 422 naming where.

Answers are JSON ``{"detail": ...}`` like every other error. A pure ASGI middleware: the body
is buffered up to its limit and handed on unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

import orjson

from wire.fields import check_strings, check_text
from wire.records import Rejected

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_JSON_DEPTH = 32  # GeoJSON MultiPolygon coordinates are 4 deep inside 3 objects
DEFAULT_BODY_LIMIT = 2 * 1024 * 1024
# Per path prefix: administrative boundaries are large; the ingest routes answer 413 themselves
# (and log it as a rejection), so they get one byte more than they accept.
BODY_LIMITS = {
    "/api/regions/import": 512 * 1024 * 1024,
    "/api/import": 20 * 1024 * 1024,  # CSV/XLSX tables (live_api.table_files.MAX_BYTES)
    "/osmand": 64 * 1024 + 1,
    "/owntracks": 64 * 1024 + 1,
    "/api/records": 64 * 1024 * 1024,  # a practice record and its files (routes/records.py)
    "/api/notices": 64 * 1024 * 1024,  # a notice's reply with its photos (routes/notices.py)
}
INGEST_PATHS = ("/osmand", "/owntracks")


def body_limit(path: str) -> int:
    for prefix, limit in BODY_LIMITS.items():
        if path == prefix or path.startswith(prefix + "/"):
            return limit
    return DEFAULT_BODY_LIMIT


class TooLarge(Exception):  # noqa: N818 - a signal, not an error of ours
    pass


class Boundary:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "websocket":
                problem = self._url_problem(scope)
                if problem is not None:
                    await send({"type": "websocket.close", "code": 1008, "reason": problem[:120]})
                    return
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        ingest = path in INGEST_PATHS
        if not ingest:
            problem = self._url_problem(scope)
            if problem is not None:
                await _answer(send, 422, problem)
                return
        limit = body_limit(path)
        try:
            body = await _read_body(scope, receive, limit)
        except TooLarge:
            if ingest:  # the route logs the rejection: give it what it may judge
                body = b"\0" * limit
            else:
                await _answer(send, 413, f"request body larger than {limit} bytes")
                return
        if not ingest and body and _is_json(scope, body):
            problem = _json_problem(body)
            if problem is not None:
                await _answer(send, 422, problem)
                return
        await self.app(scope, _replay(body, receive), send)

    @staticmethod
    def _url_problem(scope: Scope) -> str | None:
        try:
            check_text(scope.get("path", ""), "the path")
            query = scope.get("query_string", b"").decode("utf-8")
            for name, value in parse_qsl(query, keep_blank_values=True, errors="strict"):
                check_text(name, "a query parameter name")
                check_text(value, f"query parameter {name[:40]!r}")
        except Rejected as why:
            return why.message
        except (UnicodeDecodeError, ValueError):
            return "the query string is not valid percent-encoded UTF-8"
        return None


def _is_json(scope: Scope, body: bytes) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            ctype = value.split(b";")[0].strip().lower()
            if ctype.startswith(b"multipart/") or ctype == b"application/x-www-form-urlencoded":
                return False
            if ctype == b"application/json" or ctype.endswith(b"+json"):
                return True
    return body.lstrip()[:1] in (b"{", b"[")


def _json_problem(body: bytes) -> str | None:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "surrogate" in str(exc):
            return "the JSON body holds an unpaired surrogate (\\ud800-\\udfff)"
        return None  # not JSON: the route says what it expected
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels"
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)
    if b"\\" in body:  # a forbidden character can only arrive escaped
        try:
            check_strings(value, "body")
        except Rejected as why:
            return why.message
    return None


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope.get("headers", []):
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise TooLarge
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # http.disconnect once the client goes away

    return replay


async def _answer(send: Send, status: int, detail: str) -> None:
    body = orjson.dumps({"detail": detail})
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
