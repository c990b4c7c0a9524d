"""The connection gate on an implicit-TLS listener: counted before the handshake.

A tiny line-echo protocol behind a :class:`Gate` with a cap of one: the
attacker's sockets that never say hello are counted (and dropped after the
handshake timeout), refusals are said over TLS while few are in flight, and
a flood of refusals is cut off without a handshake.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from certs import self_signed_files, server_context
from mailcue_server.workers.connections import REFUSALS_IN_FLIGHT, ConnectionLimiter
from mailcue_server.workers.gate import Gate, stream_protocols
from raw_wire import RawClient
from waiting import eventually

REFUSAL = b"NO too many\r\n"
HANDSHAKE = 1.0


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"HELLO\r\n")
    while line := await reader.readline():
        writer.write(line)
    writer.close()


@pytest_asyncio.fixture
async def gate(tmp_path: Path) -> AsyncIterator[tuple[Gate, int]]:
    context = server_context(*self_signed_files(tmp_path))
    gate = Gate(
        ConnectionLimiter("echo", total=1, per_client=1),
        refusal=REFUSAL,
        tls=context,
        handshake_timeout=HANDSHAKE,
    )
    server = await gate.start_server(stream_protocols(echo, limit=1024), "127.0.0.1", 0)
    yield gate, int(server.sockets[0].getsockname()[1])
    server.close()
    gate.close()
    await server.wait_closed()


async def test_a_socket_that_never_says_hello_is_counted_until_dropped(
    gate: tuple[Gate, int],
) -> None:
    limiter, port = gate[0].limiter, gate[1]
    silent = await RawClient.open(port)  # TCP only
    try:
        refused = await RawClient.open(port, tls=True)
        assert await refused.line() == REFUSAL
        await refused.close()
        assert limiter.open == 1
        assert await silent.closed(HANDSHAKE + 3)
    finally:
        await silent.close()
    assert limiter.open == 0
    admitted = await RawClient.open(port, tls=True)
    try:
        assert await admitted.line() == b"HELLO\r\n"
        await admitted.send(b"ping\r\n")
        assert await admitted.line() == b"ping\r\n"
    finally:
        await admitted.close()


async def test_too_many_refusals_at_once_are_closed_without_a_handshake(
    gate: tuple[Gate, int],
) -> None:
    limiter, port = gate[0].limiter, gate[1]
    holder = await RawClient.open(port, tls=True)
    # Each of these is being refused over TLS and waits for a ClientHello that never comes.
    stalled = [await RawClient.open(port) for _ in range(REFUSALS_IN_FLIGHT)]
    try:
        assert await holder.line() == b"HELLO\r\n"
        with pytest.raises(OSError):
            await RawClient.open(port, tls=True)
        assert limiter.open == 1
    finally:
        for client in stalled:
            await client.close()

    # Refusal slots are free again once those clients are gone.
    async def said_no() -> bool:
        try:
            client = await RawClient.open(port, tls=True)
        except OSError:
            return False
        try:
            return await client.line() == REFUSAL
        finally:
            await client.close()

    await eventually(said_no, timeout=5)
    await holder.close()
