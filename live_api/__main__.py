"""`python -m live_api`: serve the API with uvicorn (settings from SITEWATCH_* variables)."""

from __future__ import annotations

import uvicorn

from live_api.app import create_app
from stack import gc_tuning
from stack.settings import Settings


def main() -> None:
    settings = Settings()
    app = create_app(settings)
    gc_tuning.tune()
    uvicorn.run(
        app,
        host=settings.http_host,
        port=settings.http_port,
        log_level="info",
        # no line per request: it floods the log under load and would print the WebSocket's
        # `?token=`; errors and the application's own lines stay
        access_log=False,
        ws="websockets-sansio",
    )


if __name__ == "__main__":
    main()
