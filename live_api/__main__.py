"""`python -m live_api`: serve the API with uvicorn (settings from SITEWATCH_* variables)."""

from __future__ import annotations

import uvicorn

from live_api.app import create_app
from stack.settings import Settings


def main() -> None:
    settings = Settings()
    uvicorn.run(
        create_app(settings),
        host=settings.http_host,
        port=settings.http_port,
        log_level="info",
        ws="websockets-sansio",
    )


if __name__ == "__main__":
    main()
