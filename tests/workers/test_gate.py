"""The connection gate on an implicit-TLS listener: counted before the handshake.

A tiny line-echo protocol behind a :class:`Gate` with a cap of one: the
attacker's sockets that never say hello are counted (and dropped after the
handshake timeout), refusals are said over TLS while few are in flight, and
a flood of refusals is cut off without a handshake.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import ssl
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import pytest_asyncio
import uvloop

from certs import self_signed_files, server_context
from mailcue_server.workers.connections import REFUSALS_IN_FLIGHT, ConnectionLimiter
from mailcue_server.workers.gate import Gate, stream_protocols
from raw_wire import RawClient, trust_anything
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


def greeting_after_speaking_first(port: int, hello_sent: threading.Event) -> bytes:
    """A TLS client that sends its ClientHello with the connect, as real clients do.

    ``hello_sent`` is set once the ClientHello is in the server's socket
    buffer, so the caller can hold the server's loop until then.
    """
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = trust_anything().wrap_bio(incoming, outgoing)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                raw.sendall(outgoing.read())
                hello_sent.set()
                if not (data := raw.recv(65536)):
                    raise ConnectionError("closed during the TLS handshake") from None
                incoming.write(data)
        raw.sendall(outgoing.read())
        while True:
            try:
                return tls.read(64)
            except ssl.SSLWantReadError:
                if not (data := raw.recv(65536)):
                    raise ConnectionError("closed before the greeting") from None
                incoming.write(data)


LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,  # what `mailcue serve` runs on
}


@pytest.mark.parametrize("loop_name", LOOPS)
def test_a_client_hello_sent_before_the_accept_is_not_lost(tmp_path: Path, loop_name: str) -> None:
    # Found as a hang of SMTPS under load: the ClientHello arrived before the
    # listener had accepted, was read by the admission step and dropped, and
    # client and server then waited for each other until the handshake timeout.
    context = server_context(*self_signed_files(tmp_path))

    async def scenario() -> bytes:
        gate = Gate(
            ConnectionLimiter("echo", total=4, per_client=4),
            refusal=REFUSAL,
            tls=context,
            handshake_timeout=HANDSHAKE,
        )
        server = await gate.start_server(stream_protocols(echo, limit=1024), "127.0.0.1", 0)
        port = int(server.sockets[0].getsockname()[1])
        hello_sent = threading.Event()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            client = pool.submit(greeting_after_speaking_first, port, hello_sent)
            # The loop is held (no accept) until the ClientHello waits in the socket.
            assert hello_sent.wait(5)
            try:
                return await asyncio.wait_for(asyncio.wrap_future(client), HANDSHAKE + 3)
            finally:
                server.close()
                gate.close()
                await server.wait_closed()

    with asyncio.Runner(loop_factory=LOOPS[loop_name]) as runner:
        assert runner.run(scenario()) == b"HELLO\r\n"
