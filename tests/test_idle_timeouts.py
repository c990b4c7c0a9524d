"""Idle and slow clients are disconnected, from the attacker's side of real sockets.

A node with short timeouts (1 s before an IMAP/POP3 login, 1 s of SMTP
silence, 1 s of HTTP keep-alive, 1.5 s for an HTTP request head): a client
that connects and says nothing is told why and closed, on every protocol, in
every phase before login, TLS handshake included; one that logged in may stay
silent longer; an HTTP client dribbling its headers (slowloris) is cut off
while a normal client keeps being served.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from accounts import PASSWORD, admin, new_mailbox
from conftest import node_settings
from mailcue_server.app import MailcueServer
from raw_wire import RawClient

SILENCE = 1.0  # prelogin_idle_timeout, smtp_idle_timeout, http_keepalive_timeout
HEAD_TIME = 1.5  # http_header_timeout
EARLY = 0.8  # no timeout may strike sooner than this (a margin under 1 s for timer jitter)
LATE = 5.0  # ...nor later than this on a loaded machine

HEALTH = b"GET /api/v1/health HTTP/1.1\r\nHost: mailcue\r\n\r\n"
IMAP_BYE = b"* BYE Autologout; idle for too long.\r\n"
POP3_ERR = b"-ERR Autologout; idle for too long\r\n"
SMTP_421 = b"421 4.4.2 Idle for too long, closing connection\r\n"

# listener, implicit TLS, what the server says when it gives up on a silent client
BEFORE_LOGIN = [
    ("imap", False, IMAP_BYE),
    ("imaps", True, IMAP_BYE),
    ("pop3", False, POP3_ERR),
    ("pop3s", True, POP3_ERR),
    ("smtp", False, SMTP_421),
    ("submission", False, SMTP_421),
    ("smtps", True, SMTP_421),
    ("lmtp", False, SMTP_421),
]


@pytest_asyncio.fixture(scope="module")
async def hasty(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailcueServer]:
    settings = node_settings(
        tmp_path_factory.mktemp("timeouts"),
        lmtp_port=0,
        prelogin_idle_timeout=SILENCE,
        smtp_idle_timeout=SILENCE,
        http_keepalive_timeout=int(SILENCE),
        http_header_timeout=HEAD_TIME,
    )
    node = MailcueServer(settings)
    await node.start()
    yield node
    await node.stop()


@pytest_asyncio.fixture(scope="module")
async def mailbox(hasty: MailcueServer) -> str:
    # No pooled connections: the server closes idle ones after a second.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=hasty.http_url, timeout=10, limits=limits) as http:
        return await new_mailbox(http, await admin(http))


async def greeted(hasty: MailcueServer, listener: str, tls: bool) -> RawClient:
    client = await RawClient.open(hasty.port(listener), tls=tls)
    assert (await client.line())[:1] in (b"*", b"+", b"2")
    return client


@pytest.mark.parametrize(
    ("listener", "tls", "goodbye"), BEFORE_LOGIN, ids=[row[0] for row in BEFORE_LOGIN]
)
async def test_a_silent_client_is_told_why_and_closed_before_login(
    hasty: MailcueServer, listener: str, tls: bool, goodbye: bytes
) -> None:
    client = await greeted(hasty, listener, tls)
    try:
        started = time.monotonic()
        assert await client.line(timeout=LATE) == goodbye
        assert EARLY < time.monotonic() - started < LATE
        assert await client.closed()
    finally:
        await client.close()


async def test_smtp_silence_after_ehlo_is_timed_too(hasty: MailcueServer) -> None:
    client = await greeted(hasty, "smtp", False)
    try:
        await client.send(b"EHLO client.example\r\n")
        assert (await client.lines_until(b"250 HELP\r\n"))[-1] == b"250 HELP\r\n"
        assert await client.line(timeout=LATE) == SMTP_421
        assert await client.closed()
    finally:
        await client.close()


@pytest.mark.parametrize("listener", ["smtps", "imaps", "pop3s"])
async def test_a_client_that_never_starts_tls_is_dropped(
    hasty: MailcueServer, listener: str
) -> None:
    client = await RawClient.open(hasty.port(listener))  # TCP only, no ClientHello
    try:
        assert EARLY < await client.seconds_until_closed(LATE) < LATE
    finally:
        await client.close()


async def test_imap_after_login_outlasts_the_login_timeout(
    hasty: MailcueServer, mailbox: str
) -> None:
    client = await greeted(hasty, "imap", False)
    try:
        await client.send(f'a LOGIN "{mailbox}" "{PASSWORD}"\r\n'.encode())
        assert (await client.lines_until_tagged(b"a "))[-1].startswith(b"a OK")
        await asyncio.sleep(SILENCE + 0.6)
        await client.send(b"b NOOP\r\n")
        assert (await client.lines_until_tagged(b"b "))[-1].startswith(b"b OK")
    finally:
        await client.close()


async def test_pop3_after_login_outlasts_the_login_timeout(
    hasty: MailcueServer, mailbox: str
) -> None:
    client = await greeted(hasty, "pop3", False)
    try:
        await client.send(f"USER {mailbox}\r\n".encode())
        assert (await client.line()).startswith(b"+OK")
        await client.send(f"PASS {PASSWORD}\r\n".encode())
        assert (await client.line()).startswith(b"+OK")
        await asyncio.sleep(SILENCE + 0.6)
        await client.send(b"NOOP\r\n")
        assert (await client.line()).startswith(b"+OK")
    finally:
        await client.close()


async def test_an_http_connection_that_never_sends_a_request_is_closed(
    hasty: MailcueServer,
) -> None:
    client = await RawClient.open(hasty.port("http"))
    try:
        assert EARLY < await client.seconds_until_closed(LATE) < LATE
    finally:
        await client.close()


async def test_an_idle_http_keep_alive_connection_is_closed(hasty: MailcueServer) -> None:
    client = await RawClient.open(hasty.port("http"))
    try:
        await client.send(HEALTH)
        status, _ = await client.http_response()
        assert status.startswith(b"HTTP/1.1 200 ")
        assert EARLY < await client.seconds_until_closed(LATE) < LATE
    finally:
        await client.close()


async def test_slowloris_is_cut_off_while_other_clients_are_served(
    hasty: MailcueServer,
) -> None:
    slow = await RawClient.open(hasty.port("http"))
    head = b"GET /api/v1/health HTTP/1.1\r\nHost: mailcue\r\nX-Slow: " + b"a" * 1000

    async def dribble() -> None:
        # One byte every quarter second: each one is well inside the keep-alive timeout.
        with contextlib.suppress(OSError):
            for byte in head:
                await slow.send(bytes([byte]))
                await asyncio.sleep(0.25)

    started = time.monotonic()
    sender = asyncio.create_task(dribble())
    answer = asyncio.create_task(slow.http_response())
    served = 0
    try:
        async with httpx.AsyncClient(base_url=hasty.http_url, timeout=10) as http:
            while not answer.done() and time.monotonic() - started < LATE:
                assert (await http.get("/api/v1/health")).status_code == 200
                served += 1
                await asyncio.sleep(0.1)
        status, body = await answer
        assert status == b"HTTP/1.1 408 Request Timeout\r\n"
        assert body == b"Request headers not received in time\n"
        assert HEAD_TIME - 0.3 < time.monotonic() - started < LATE
        assert await slow.closed()
        assert served >= 3
    finally:
        for task in (sender, answer):
            task.cancel()
        await asyncio.gather(sender, answer, return_exceptions=True)
        await slow.close()
