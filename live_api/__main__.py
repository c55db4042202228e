"""`python -m live_api`: serve the API with uvicorn (settings from SITEWATCH_* variables)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import sys

import uvicorn

from config import gc_tuning
from config.settings import Settings
from live_api.app import create_app


async def serve(plain: uvicorn.Server, public: uvicorn.Server | None) -> None:
    """The loopback server, and once its lifespan has started the app, the public one; until
    either stops (a signal stops the one that took it, the other follows)."""
    tasks = [asyncio.create_task(plain.serve())]
    if public is not None:
        while not plain.started and not tasks[0].done():
            await asyncio.sleep(0.05)
        if plain.started:
            tasks.append(asyncio.create_task(public.serve()))
    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for server in (plain, public):
        if server is not None:
            server.should_exit = True
    await asyncio.gather(*tasks)


# a `token=` value, whatever it holds, and anything shaped like a token (live_api.auth), under
# whatever parameter a client put it
_TOKEN_IN_QUERY = re.compile(r"([?&]token=)[^&\s\"]*|sw_[A-Za-z0-9_-]{16,}")


class RedactTokens(logging.Filter):
    """uvicorn logs each WebSocket handshake with its path and query string ("WebSocket
    /ws/live?token=..." [accepted]), on its error logger and whatever `access_log` says: no
    token may reach the log file, also not one sent under another parameter's name."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_QUERY.sub(r"\1***", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_QUERY.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args
            )
        return True


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
        "ws_per_message_deflate": settings.ws_compression,
    }
    plain = uvicorn.Server(
        uvicorn.Config(app, host=settings.http_host, port=settings.http_port, **common)
    )
    public = None
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
        public = uvicorn.Server(tls)
    # after the Configs: building one configures uvicorn's loggers
    logging.getLogger("uvicorn.error").addFilter(RedactTokens())
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C of a foreground run: no traceback
        asyncio.run(serve(plain, public))
    if not plain.started:
        sys.exit(3)  # as uvicorn.run: the app did not start


if __name__ == "__main__":
    main()
