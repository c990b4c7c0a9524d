"""The HTTP protocol classes of api/connections.py on both of uvicorn's parsers.

The node runs httptools (tests/test_connection_caps.py and
tests/test_idle_timeouts.py check it end to end); these tests run a bare
uvicorn with a tiny ASGI app on each parser, so switching to h11 keeps the
caps and the timeouts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import pytest_asyncio
import uvicorn

from mailcue_server.api.connections import http_protocols
from mailcue_server.app import bind_socket
from mailcue_server.workers.connections import ConnectionLimiter
from raw_wire import RawClient

HEAD_TIME = 0.6
KEEP_ALIVE = 1
REQUEST = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


async def hello(scope: dict[str, Any], receive: Callable[[], Awaitable[Any]], send: Any) -> None:
    assert scope["type"] == "http"
    await send(
        {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]}
    )
    await send({"type": "http.response.body", "body": b"hello"})


@pytest_asyncio.fixture(params=["httptools", "h11"])
async def port(request: pytest.FixtureRequest) -> AsyncIterator[int]:
    limiter = ConnectionLimiter("http", total=10, per_client=1)
    protocols = http_protocols(limiter, header_timeout=HEAD_TIME, parser=request.param)
    config = uvicorn.Config(
        hello,
        log_level="warning",
        lifespan="off",
        http=protocols.http,
        ws=protocols.ws,
        timeout_keep_alive=KEEP_ALIVE,
    )
    server = uvicorn.Server(config)
    sock = bind_socket("127.0.0.1", 0)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.01)
    yield int(sock.getsockname()[1])
    server.should_exit = True
    await task


async def test_one_connection_per_client_here_a_second_gets_503(port: int) -> None:
    first = await RawClient.open(port)
    second: RawClient | None = None
    try:
        await first.send(REQUEST)
        assert (await first.http_response()) == (b"HTTP/1.1 200 OK\r\n", b"hello")
        second = await RawClient.open(port)
        await second.send(REQUEST)
        status, body = await second.http_response()
        assert (status, body) == (
            b"HTTP/1.1 503 Service Unavailable\r\n",
            b"Too many connections\n",
        )
        assert await second.closed()
        await first.send(REQUEST)
        assert (await first.http_response())[0] == b"HTTP/1.1 200 OK\r\n"
    finally:
        await first.close()
        if second is not None:
            await second.close()


async def test_a_silent_new_connection_is_closed(port: int) -> None:
    client = await RawClient.open(port)
    try:
        assert 0.7 < await client.seconds_until_closed(3) < 3
    finally:
        await client.close()


async def test_a_request_head_dribbled_in_is_answered_408(port: int) -> None:
    client = await RawClient.open(port)

    async def dribble() -> None:
        with contextlib.suppress(OSError):
            for byte in b"GET / HTTP/1.1\r\nHost: test\r\nX-Slow: " + b"a" * 100:
                await client.send(bytes([byte]))
                await asyncio.sleep(0.1)

    sender = asyncio.create_task(dribble())
    try:
        status, _ = await client.http_response()
        assert status == b"HTTP/1.1 408 Request Timeout\r\n"
        assert await client.closed()
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        await client.close()


async def test_a_head_sent_in_pieces_in_time_is_served(port: int) -> None:
    client = await RawClient.open(port)
    try:
        for piece in (REQUEST[:10], REQUEST[10:20], REQUEST[20:]):
            await client.send(piece)
            await asyncio.sleep(HEAD_TIME / 4)
        assert (await client.http_response()) == (b"HTTP/1.1 200 OK\r\n", b"hello")
        # The next request on the same connection gets its own allowance.
        await asyncio.sleep(HEAD_TIME / 2)
        await client.send(REQUEST)
        assert (await client.http_response())[0] == b"HTTP/1.1 200 OK\r\n"
    finally:
        await client.close()
