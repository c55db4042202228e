"""`python -m live_api`: serve the API with uvicorn (settings from SITEWATCH_* variables)."""

from __future__ import annotations

import asyncio

import uvicorn

from config import gc_tuning
from config.settings import Settings
from live_api.app import create_app


async def serve(servers: list[uvicorn.Server]) -> None:
    """Every server until one stops (a signal stops the one that took it, the rest follow)."""
    tasks = [asyncio.create_task(s.serve()) for s in servers]
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for s in servers:
        s.should_exit = True
    await asyncio.gather(*tasks)


def main() -> None:
    settings = Settings()
    app = create_app(settings)
    gc_tuning.tune()
    common = {
        "log_level": "info",
        # no line per request: it floods the log under load and would print the WebSocket's
        # `?token=`; errors and the application's own lines stay
        "access_log": False,
        "ws": "websockets-sansio",
    }
    plain = uvicorn.Config(app, host=settings.http_host, port=settings.http_port, **common)
    servers = [uvicorn.Server(plain)]
    if settings.listen and settings.https_port:
        # the same app over HTTPS on the public address; its lifespan runs once, in `plain`
        tls = uvicorn.Config(
            app,
            host=settings.listen,
            port=settings.https_port,
            lifespan="off",
            ssl_certfile=settings.tls_cert_file,
            ssl_keyfile=settings.tls_key_file,
            **common,
        )
        servers.append(uvicorn.Server(tls))
    asyncio.run(serve(servers))


if __name__ == "__main__":
    main()
