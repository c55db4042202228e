"""A bearer token never reaches the API's log: uvicorn logs each WebSocket handshake with its
query string, and browsers can only pass the live feed's token there (CONTRACT §5)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import websockets

from live_api.__main__ import RedactTokens
from stack.up import Stack
from tests.stack_client import StackClient, wait_until


def test_the_live_feeds_token_is_redacted_in_the_api_log(
    running_stack: Stack, sw: StackClient
) -> None:
    async def connect() -> None:
        async with websockets.connect(sw.ws_url()) as ws:
            await ws.ping()

    asyncio.run(connect())
    log = Path(running_stack.options.data_dir) / "logs" / "api.log"
    wait_until(
        lambda: "WebSocket /ws/live?token=***" in log.read_text(errors="replace"),
        what="the handshake logged",
    )
    assert sw.admin_token not in log.read_text(errors="replace")


def test_the_filter_redacts_tokens_in_the_message_and_its_arguments() -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" %s token=kept',
        ("127.0.0.1:1", "/ws/live?region=440300&token=sw_secret&x=1", "[accepted]"),
        None,
    )
    assert RedactTokens().filter(record)
    assert record.getMessage() == (
        '127.0.0.1:1 - "WebSocket /ws/live?region=440300&token=***&x=1" [accepted] token=kept'
    )


def test_a_token_under_another_parameter_is_redacted_too() -> None:
    token = "sw_" + "Ab3-_" * 8
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "%s", (f"/ws/live?x={token}",), None
    )
    RedactTokens().filter(record)
    assert record.getMessage() == "/ws/live?x=***"
