"""One guessing limit across HTTP login, SMTP AUTH, IMAP and POP3, from the attacker's side.

The attacker connects from 127.0.0.2 (or .3), the owner from 127.0.0.1: the
limit is per identity and client address, so the owner is never locked out
by someone else's guesses, and once an address has used its guesses for a
name, no protocol checks another password for that name from there (the
right one included, so the refusal tells nothing).
"""

from __future__ import annotations

import asyncio
import base64
import imaplib
import poplib
import secrets
import smtplib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio

from accounts import PASSWORD, admin, new_mailbox, new_user
from conftest import ADMIN_PASSWORD, ADMIN_USER, node_settings
from mailcue_server.app import MailcueServer

ATTACKER = "127.0.0.2"
OTHER_ATTACKER = "127.0.0.3"
OWNER = "127.0.0.1"
BUDGET = 5  # MAILCUE_LOGIN_MAX_ATTEMPTS' default
MAILBOX_PASSWORD = "mailbox-secret-words"


def smtp_auth(server: MailcueServer, login: str, password: str, source: str) -> tuple[int, str]:
    """AUTH PLAIN on the submission port from ``source``: the reply code and text."""
    blob = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
    with smtplib.SMTP(
        "127.0.0.1", server.port("submission"), timeout=10, source_address=(source, 0)
    ) as client:
        client.ehlo("attacker.example")
        code, text = client.docmd("AUTH", f"PLAIN {blob}")
        return code, text.decode()


class _SourcedImap(imaplib.IMAP4):
    def __init__(self, port: int, source: str) -> None:
        self._source = source
        super().__init__("127.0.0.1", port, timeout=10)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return socket.create_connection(
            (self.host, self.port), timeout, source_address=(self._source, 0)
        )


def imap_login(server: MailcueServer, login: str, password: str, source: str) -> str:
    """``OK`` or the tagged refusal IMAP LOGIN got from ``source``."""
    client = _SourcedImap(server.port("imap"), source)
    try:
        client.login(login, password)
    except imaplib.IMAP4.error as exc:
        return str(exc)
    finally:
        client.shutdown()
    return "OK"


class _SourcedPop3(poplib.POP3):
    def __init__(self, port: int, source: str) -> None:
        self._source = source
        super().__init__("127.0.0.1", port, timeout=10)

    def _create_socket(self, timeout: float) -> socket.socket:
        return socket.create_connection(
            (self.host, self.port), timeout, source_address=(self._source, 0)
        )


def pop3_login(server: MailcueServer, login: str, password: str, source: str) -> str:
    """``+OK`` or the ``-ERR`` line USER/PASS got from ``source``."""
    client = _SourcedPop3(server.port("pop3"), source)
    try:
        client.user(login)
        client.pass_(password)
    except poplib.error_proto as exc:
        return exc.args[0].decode()
    finally:
        client.close()
    return "+OK"


def http_from(server: MailcueServer, source: str) -> httpx.AsyncClient:
    transport = httpx.AsyncHTTPTransport(local_address=source)
    return httpx.AsyncClient(base_url=server.http_url, transport=transport, timeout=30)


async def http_login(server: MailcueServer, username: str, password: str, source: str) -> int:
    async with http_from(server, source) as client:
        response = await client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        return response.status_code


async def mailbox_with_password(http: httpx.AsyncClient) -> str:
    return await new_mailbox(http, await new_user(http), password=MAILBOX_PASSWORD)


async def test_smtp_auth_guesses_are_limited_and_the_right_password_then_waits(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    address = await mailbox_with_password(http)
    guesses = [
        await asyncio.to_thread(smtp_auth, server, address, f"guess-{n}-x", ATTACKER)
        for n in range(BUDGET)
    ]
    assert [code for code, _ in guesses] == [535] * BUDGET
    code, text = await asyncio.to_thread(smtp_auth, server, address, MAILBOX_PASSWORD, ATTACKER)
    assert (code, text[:5]) == (454, "4.7.0"), text
    # Another client address (the owner's) is not locked out.
    owner_code, _ = await asyncio.to_thread(smtp_auth, server, address, MAILBOX_PASSWORD, OWNER)
    assert owner_code == 235


async def test_imap_guesses_lock_the_name_on_every_protocol(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    address = await mailbox_with_password(http)
    for n in range(BUDGET):
        refused = await asyncio.to_thread(imap_login, server, address, f"guess-{n}-x", ATTACKER)
        assert "[AUTHENTICATIONFAILED]" in refused
    imap = await asyncio.to_thread(imap_login, server, address, MAILBOX_PASSWORD, ATTACKER)
    pop3 = await asyncio.to_thread(pop3_login, server, address, MAILBOX_PASSWORD, ATTACKER)
    smtp, _ = await asyncio.to_thread(smtp_auth, server, address, MAILBOX_PASSWORD, ATTACKER)
    assert "[UNAVAILABLE]" in imap, imap
    assert pop3.startswith("-ERR [SYS/TEMP]"), pop3
    assert smtp == 454
    assert await asyncio.to_thread(imap_login, server, address, MAILBOX_PASSWORD, OWNER) == "OK"


async def test_pop3_guesses_are_limited(server: MailcueServer, http: httpx.AsyncClient) -> None:
    address = await mailbox_with_password(http)
    for n in range(BUDGET):
        refused = await asyncio.to_thread(pop3_login, server, address, f"guess-{n}-x", ATTACKER)
        assert refused.startswith("-ERR [AUTH]"), refused
    locked = await asyncio.to_thread(pop3_login, server, address, MAILBOX_PASSWORD, ATTACKER)
    assert locked.startswith("-ERR [SYS/TEMP]"), locked
    assert await asyncio.to_thread(pop3_login, server, address, MAILBOX_PASSWORD, OWNER) == "+OK"


async def test_after_http_said_429_no_mail_protocol_takes_the_admin_password(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    """The finding: HTTP login locked, then SMTP AUTH took more guesses and let admin in."""
    address = await mailbox_with_password(http)
    statuses = [
        await http_login(server, ADMIN_USER, f"guess-{n}-x", OTHER_ATTACKER)
        for n in range(BUDGET + 1)
    ]
    assert statuses == [401] * BUDGET + [429]
    master = f"{address}*{ADMIN_USER}"
    smtp, _ = await asyncio.to_thread(smtp_auth, server, master, ADMIN_PASSWORD, OTHER_ATTACKER)
    imap = await asyncio.to_thread(imap_login, server, master, ADMIN_PASSWORD, OTHER_ATTACKER)
    pop3 = await asyncio.to_thread(pop3_login, server, master, ADMIN_PASSWORD, OTHER_ATTACKER)
    assert (smtp, "[UNAVAILABLE]" in imap, pop3[:15]) == (454, True, "-ERR [SYS/TEMP]")
    # The admin, from their own address, is not locked out.
    assert (await admin(http)).access_token
    assert await asyncio.to_thread(imap_login, server, master, ADMIN_PASSWORD, OWNER) == "OK"


async def test_master_login_guesses_count_against_the_admin(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    address = await mailbox_with_password(http)
    source = "127.0.0.4"
    for n in range(BUDGET):
        refused = await asyncio.to_thread(
            imap_login, server, f"{address}*{ADMIN_USER}", f"guess-{n}-x", source
        )
        assert "[AUTHENTICATIONFAILED]" in refused
    async with http_from(server, source) as client:
        response = await client.post(
            "/api/v1/auth/login", json={"username": ADMIN_USER, "password": ADMIN_PASSWORD}
        )
    assert response.status_code == 429, response.text
    assert int(response.headers["retry-after"]) > 0


async def test_parallel_guesses_get_no_more_than_the_budget(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    user = await new_user(http)
    source = "127.0.0.5"
    statuses = await asyncio.gather(
        *(http_login(server, user.username, f"guess-{n}-x", source) for n in range(20))
    )
    assert sorted(statuses) == [401] * BUDGET + [429] * (20 - BUDGET)
    assert await http_login(server, user.username, PASSWORD, source) == 429
    assert await http_login(server, user.username, PASSWORD, OWNER) == 200


async def test_smtp_auth_takes_no_admin_account_password(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    """An admin's own name and password are for the API; on SMTP only the master login."""
    code, _ = await asyncio.to_thread(smtp_auth, server, ADMIN_USER, ADMIN_PASSWORD, OWNER)
    assert code == 535
    user = await new_user(http)
    user_code, _ = await asyncio.to_thread(smtp_auth, server, user.username, PASSWORD, OWNER)
    assert user_code == 235


async def test_a_client_retrying_one_stale_password_is_not_locked_out(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    """A phone polling with the old password: the same wrong password counts once."""
    address = await mailbox_with_password(http)
    for _ in range(BUDGET * 2):
        stale = await asyncio.to_thread(imap_login, server, address, "the-old-password", OWNER)
        assert "[AUTHENTICATIONFAILED]" in stale, stale
    assert await asyncio.to_thread(imap_login, server, address, MAILBOX_PASSWORD, OWNER) == "OK"


WINDOW = 6


@pytest_asyncio.fixture
async def short_window(tmp_path: Path) -> AsyncIterator[MailcueServer]:
    node = MailcueServer(node_settings(tmp_path, login_window_seconds=WINDOW))
    await node.start()
    yield node
    await node.stop()


async def test_the_lock_lifts_after_the_window_and_locked_tries_do_not_extend_it(
    short_window: MailcueServer,
) -> None:
    node = short_window
    name = f"nobody-{secrets.token_hex(3)}@mailcue.local"
    started = time.monotonic()  # every failure is newer than this...
    refusals = await asyncio.gather(
        *(asyncio.to_thread(pop3_login, node, name, f"g{n}", ATTACKER) for n in range(BUDGET))
    )
    locked_at = time.monotonic()  # ...and older than this
    assert all(r.startswith("-ERR [AUTH]") for r in refusals), refusals
    hammered = 0
    while time.monotonic() - started < WINDOW - 1:  # hammering while surely locked
        assert await http_login(node, name, "again", ATTACKER) == 429
        hammered += 1
        await asyncio.sleep(0.3)
    assert hammered > 0
    await asyncio.sleep(locked_at + WINDOW + 0.3 - time.monotonic())
    assert await http_login(node, name, "again", ATTACKER) == 401
