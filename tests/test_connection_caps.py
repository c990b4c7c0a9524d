"""Connection caps on every listener, from the attacker's side of real sockets.

A node with tiny caps (2 connections per client address, 4 per listener):
the connection one over a cap reads the protocol's refusal line and is
closed, the connections already open keep working, and once one closes a new
one gets in again. 127.0.0.2 and 127.0.0.3 are other clients than 127.0.0.1.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
import websockets

from conftest import node_settings
from mailcue_server.app import MailcueServer
from raw_wire import RawClient
from waiting import eventually

PER_CLIENT = 2
TOTAL = 4


@dataclass(frozen=True)
class Speaker:
    """How to tell, on one listener, a greeting, a refusal and a working connection apart."""

    listener: str
    tls: bool
    greeting: bytes  # how the first line starts; b"" where the server waits (HTTP)
    refusal: bytes  # the whole refusal line
    probe: bytes  # a command that changes nothing...
    answer: bytes  # ...and how its reply starts
    reply_end: bytes | None = None  # the last line of a multi-line reply

    def __str__(self) -> str:
        return self.listener


HEALTH = b"GET /api/v1/health HTTP/1.1\r\nHost: mailcue\r\n\r\n"
SMTP_REFUSAL = b"421 4.7.0 Too many connections\r\n"
IMAP_REFUSAL = b"* BYE Too many connections\r\n"
POP3_REFUSAL = b"-ERR [SYS/TEMP] Too many connections\r\n"


def _smtp(listener: str, tls: bool = False) -> Speaker:
    return Speaker(listener, tls, b"220 ", SMTP_REFUSAL, b"NOOP\r\n", b"250 ")


def _imap(listener: str, tls: bool = False) -> Speaker:
    return Speaker(listener, tls, b"* OK", IMAP_REFUSAL, b"p NOOP\r\n", b"p OK")


def _pop3(listener: str, tls: bool = False) -> Speaker:
    return Speaker(listener, tls, b"+OK", POP3_REFUSAL, b"CAPA\r\n", b"+OK", b".\r\n")


SPEAKERS = [
    _smtp("smtp"),
    _smtp("submission"),
    _smtp("smtps", tls=True),
    _smtp("lmtp"),
    _imap("imap"),
    _imap("imaps", tls=True),
    _pop3("pop3"),
    _pop3("pop3s", tls=True),
    Speaker(
        "http",
        False,
        b"",
        b"HTTP/1.1 503 Service Unavailable\r\n",
        HEALTH,
        b"HTTP/1.1 200 ",
    ),
]


@pytest_asyncio.fixture(scope="module")
async def capped(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailcueServer]:
    settings = node_settings(
        tmp_path_factory.mktemp("caps"),
        lmtp_port=0,
        max_connections=TOTAL,
        max_connections_per_client=PER_CLIENT,
    )
    node = MailcueServer(settings)
    await node.start()
    yield node
    await node.stop()


async def works(client: RawClient, speaker: Speaker) -> bool:
    """Whether the connection answers a harmless command as usual."""
    await client.send(speaker.probe)
    if speaker.listener == "http":
        status, _ = await client.http_response()
        return status.startswith(speaker.answer)
    if speaker.reply_end is not None:
        lines = await client.lines_until(speaker.reply_end)
        return lines[0].startswith(speaker.answer) and lines[-1] == speaker.reply_end
    return (await client.line()).startswith(speaker.answer)


async def session(port: int, speaker: Speaker, source: str = "127.0.0.1") -> RawClient:
    """A connection the server has taken: greeted, or (HTTP) answered once."""
    client = await RawClient.open(port, source=source, tls=speaker.tls)
    if speaker.greeting:
        greeting = await client.line()
        assert greeting.startswith(speaker.greeting), greeting
    else:
        assert await works(client, speaker)
    return client


async def refused(port: int, speaker: Speaker, source: str = "127.0.0.1") -> None:
    """Open one more connection: it must read the refusal line and then be closed."""
    client = await RawClient.open(port, source=source, tls=speaker.tls)
    try:
        if not speaker.greeting:
            await client.send(speaker.probe)  # an HTTP client speaks first
        assert await client.line() == speaker.refusal
        assert await client.closed()
    finally:
        await client.close()


async def admitted_again(port: int, speaker: Speaker, source: str) -> RawClient:
    """Wait until a new connection from ``source`` is served again; return it."""
    admitted: list[RawClient] = []

    async def check() -> bool:
        client = await RawClient.open(port, source=source, tls=speaker.tls)
        if speaker.greeting:
            first = await client.line()
            ok = first.startswith(speaker.greeting)
        else:
            ok = await works(client, speaker)
        if ok:
            admitted.append(client)
        else:
            await client.close()
        return ok

    await eventually(check, timeout=5)
    return admitted[0]


async def close_all(clients: list[RawClient]) -> None:
    for client in clients:
        with contextlib.suppress(OSError):
            await client.close()


@pytest.mark.parametrize("speaker", SPEAKERS, ids=str)
async def test_a_client_over_its_cap_is_refused_and_its_other_connections_keep_working(
    capped: MailcueServer, speaker: Speaker
) -> None:
    port = capped.port(speaker.listener)
    held = [await session(port, speaker) for _ in range(PER_CLIENT)]
    try:
        await refused(port, speaker)
        for client in held:
            assert await works(client, speaker)
        # Another client is not affected by the first one's cap.
        held.append(await session(port, speaker, source="127.0.0.2"))
        await held.pop(0).close()
        held.append(await admitted_again(port, speaker, "127.0.0.1"))
        for client in held:
            assert await works(client, speaker)
    finally:
        await close_all(held)


@pytest.mark.parametrize("speaker", SPEAKERS, ids=str)
async def test_a_full_listener_refuses_every_new_client_until_one_leaves(
    capped: MailcueServer, speaker: Speaker
) -> None:
    port = capped.port(speaker.listener)
    held = [
        await session(port, speaker, source)
        for source in ("127.0.0.1", "127.0.0.2")
        for _ in range(PER_CLIENT)
    ]
    try:
        assert len(held) == TOTAL
        await refused(port, speaker, source="127.0.0.3")
        await held.pop(0).close()
        held.append(await admitted_again(port, speaker, "127.0.0.3"))
        for client in held:
            assert await works(client, speaker)
    finally:
        await close_all(held)


async def test_other_listeners_are_counted_on_their_own(capped: MailcueServer) -> None:
    imap, pop3 = SPEAKERS[4], SPEAKERS[6]
    held = [await session(capped.port("imap"), imap) for _ in range(PER_CLIENT)]
    try:
        # The same client, at its cap on IMAP, still gets POP3 and IMAPS.
        held.append(await session(capped.port("pop3"), pop3))
        held.append(await session(capped.port("imaps"), SPEAKERS[5]))
    finally:
        await close_all(held)


async def test_websocket_connections_count_and_free_their_slot_when_closed(
    capped: MailcueServer,
) -> None:
    http = SPEAKERS[-1]
    port = capped.port("http")
    url = f"ws://127.0.0.1:{port}/graphql"
    sockets = [
        await websockets.connect(
            url, subprotocols=[websockets.Subprotocol("graphql-transport-ws")]
        )
        for _ in range(PER_CLIENT)
    ]
    try:
        await refused(port, http)
    finally:
        for socket in sockets:
            await socket.close()
    # The HTTP connections upgraded to WebSocket gave their slots back when they closed.
    held = [await admitted_again(port, http, "127.0.0.1")]
    try:
        held.append(await session(port, http))
    finally:
        await close_all(held)
