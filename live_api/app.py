"""The FastAPI application, built from settings by `create_app` (nothing at import time)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout

from config.settings import Settings
from devices.broker import BrokerAdmin
from devices.credentials import HttpCredentials
from devices.directory import DirectoryCache
from ingest import http_routes
from ingest.bridge import mqtt_target
from ingest.gate import Gate
from ingest.rate_limits import RateLimits
from live_api import metrics as metrics_text
from live_api import openapi as api_docs
from live_api.boundary import Boundary
from live_api.health import HealthMonitor
from live_api.hub import Hub
from live_api.routes import (
    accounts,
    alerts,
    checkin,
    continuing_education,
    dashboard,
    device_lifecycle,
    devices,
    dossier,
    engineer_lifecycle,
    engineers,
    facts,
    filings,
    imports,
    live,
    map_data,
    notices,
    project_import,
    project_lifecycle,
    projects,
    record_reads,
    records,
    regions,
    seals,
    tokens,
    trainings,
)
from live_api.routes.engineer_record import router as engineer_record_router
from live_api.sealer import Sealer
from store.db import async_engine
from store.fence_cache import FenceCache
from store.retry import is_poison

log = logging.getLogger("sitewatch.api")

MAP_DIR = Path(__file__).resolve().parent.parent / "map_ui"
# the console's build (console_ui/, `make console` runs `vite build` at install time)
CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console_ui" / "dist"


# The console runs only its own bundled code: no inline script, no other origin, not framed
# elsewhere (styles inline: Leaflet positions its panes with style attributes).
CONSOLE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; object-src 'none'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
    "frame-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "no-referrer",
}


class ConsoleFiles(StaticFiles):
    async def get_response(self, path: str, scope: Any) -> Any:
        response = await super().get_response(path, scope)
        response.headers.update(CONSOLE_HEADERS)
        return response


def create_app(settings: Settings) -> FastAPI:
    rate_limits = RateLimits(  # a limit that does not parse stops the start here
        ingest_identity=settings.ingest_rate_per_identity,
        ingest_address=settings.ingest_rate_per_address,
        login_username=settings.login_failures_per_username,
        login_address=settings.login_attempts_per_address,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = async_engine(settings, pool_size=10)
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_url,
            acks="all",
            linger_ms=2,
            enable_idempotence=settings.kafka_idempotence,
        )
        await producer.start()
        key = bytes.fromhex(settings.personal_data_key.get_secret_value())
        host, port = mqtt_target(settings.mqtt_url)
        app.state.settings = settings
        app.state.engine = engine
        app.state.personal_key = key
        app.state.fences = FenceCache(engine)
        app.state.broker = BrokerAdmin(
            host,
            port,
            settings.mqtt_admin_username,
            settings.mqtt_admin_password.get_secret_value(),
        )
        app.state.gate = Gate(producer, engine, DirectoryCache(engine, key))
        app.state.http_credentials = HttpCredentials(engine)
        app.state.rate_limits = rate_limits
        app.state.hub = Hub()
        consumer = asyncio.create_task(app.state.hub.consume(settings.kafka_url))
        app.state.health = HealthMonitor(settings.kafka_url, settings.data_dir / "run")
        app.state.health.start()
        app.state.sealer = Sealer(settings, engine)
        app.state.sealer.start()
        try:
            yield
        finally:
            await app.state.sealer.stop()
            await app.state.health.stop()
            consumer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consumer
            await producer.stop()
            await engine.dispose()

    app = FastAPI(
        title="SiteWatch",
        version="1.0",
        summary="Real-time supervision of construction sites: check-ins, devices, alerts.",
        lifespan=lifespan,
    )

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content={"detail": jsonable_errors(exc.errors())})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        """Last resort, still JSON. A value the database refuses (a data exception: out of
        range, bad encoding) came from the client: 422. Anything else is our bug: 500 with an
        id to find its traceback in the log."""
        if is_poison(exc):
            log.warning("%s %s: refused by the database: %r", request.method, request.url.path, exc)
            return JSONResponse(
                status_code=422,
                content={"detail": f"a value of the request cannot be stored: {_first_line(exc)}"},
            )
        if isinstance(exc, PoolTimeout):  # every connection busy: the client may try again
            log.warning("%s %s: no database connection free", request.method, request.url.path)
            return JSONResponse(
                status_code=503,
                content={"detail": "the server is busy; retry in a moment"},
                headers={"Retry-After": "2"},
            )
        incident = secrets.token_hex(6)
        log.error(
            "%s %s failed (incident %s)", request.method, request.url.path, incident, exc_info=exc
        )
        return JSONResponse(
            status_code=500,
            content={"detail": f"internal error, logged as incident {incident}"},
        )

    @app.get("/healthz", tags=["ops"])
    async def healthz(request: Request) -> JSONResponse:
        checks: dict[str, Any] = {}
        try:
            async with request.app.state.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            checks["database"] = "ok"
        except Exception as exc:  # report, never raise: this is the health answer
            checks["database"] = f"down: {type(exc).__name__}"
        checks["live_feed"] = "ok" if request.app.state.hub.ready.is_set() else "starting"
        problems = request.app.state.health.problems()
        checks["components"] = problems.get("restarting") or "ok"
        checks["stream_partitions"] = problems.get("stalled_partitions") or "ok"
        checks["bridge"] = problems.get("bridge") or "ok"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse(
            {"status": "ok" if ok else "degraded", **checks}, status_code=200 if ok else 503
        )

    @app.get("/metrics", tags=["ops"], response_class=PlainTextResponse)
    async def metrics(request: Request) -> Response:
        if request.scope.get("server", ("",))[0] != settings.http_host:
            # on the public address (--listen) as if absent: each scrape queries the database
            return JSONResponse({"detail": "Not Found"}, status_code=404)
        state = request.app.state
        async with state.engine.connect() as conn:
            body = await metrics_text.exposition(state.gate, state.hub, conn)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    for resource in (
        accounts,
        tokens,
        regions,
        projects,
        project_lifecycle,
        engineers,
        engineer_lifecycle,
        continuing_education,
        filings,
        devices,
        device_lifecycle,
        imports,
        project_import,
        trainings,
        records,
        record_reads,
        notices,
        dossier,
        alerts,
        dashboard,
        checkin,
    ):
        app.include_router(resource.router)
    app.include_router(facts.router)
    app.include_router(live.router)
    app.include_router(map_data.router)
    app.include_router(http_routes.router)
    app.include_router(engineer_record_router)
    app.include_router(seals.router)
    api_docs.install(app)  # common error answers and bearer auth on every /api route
    app.add_middleware(Boundary)  # type: ignore[arg-type]

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/" if CONSOLE_DIR.exists() else "/map/")

    if MAP_DIR.exists():
        app.mount("/map", StaticFiles(directory=MAP_DIR, html=True), name="map")
    if CONSOLE_DIR.exists():
        app.mount("/console", ConsoleFiles(directory=CONSOLE_DIR, html=True), name="console")
    return app


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    return text.replace("\x00", "\ufffd")[:300]


def jsonable_errors(errors: Any) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        out.append({"loc": list(e.get("loc", ())), "msg": str(e.get("msg")), "type": e.get("type")})
    return out
