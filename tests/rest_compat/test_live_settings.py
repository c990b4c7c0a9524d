"""Settings that apply while the server runs: the size limit, on this node and the others."""

from __future__ import annotations

import asyncio
import imaplib
import secrets
import smtplib

import httpx
import pytest

from accounts import PASSWORD, admin, new_user
from mailcue_server.app import MailcueServer
from mailcue_server.store import mailboxes
from mailcue_server.store import settings as stored

SETTINGS = "/api/v1/system/settings"
DEFAULT_SIZE = 25 * 1024 * 1024


def smtp_size_and_reply(port: int, body_bytes: int) -> tuple[str, int]:
    """EHLO's SIZE line, and the reply to a message of about ``body_bytes``."""
    raw = b"Subject: size\r\n\r\n" + (b"x" * 78 + b"\r\n") * (body_bytes // 80)
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("client.test")
        size = f"SIZE {client.esmtp_features['size']}"
        try:
            client.sendmail("a@client.test", ["big@mailcue.local"], raw)
        except smtplib.SMTPException as refused:
            return size, int(getattr(refused, "smtp_code", 0))
        return size, 250


def imap_limit_and_append(port: int, address: str, size: int) -> tuple[str, str]:
    """The APPENDLIMIT capability after login, and how an APPEND of ``size`` bytes ends."""
    message = b"Subject: append\r\n\r\n" + (b"y" * 78 + b"\r\n") * (size // 80)
    with imaplib.IMAP4("127.0.0.1", port, timeout=10) as client:
        client.login(address, PASSWORD)
        _, lines = client.capability()  # imaplib keeps only the pre-login list
        listed = b" ".join(line for line in lines if isinstance(line, bytes)).decode().split()
        limit = next((c for c in listed if c.startswith("APPENDLIMIT=")), "")
        try:
            status, _ = client.append("INBOX", None, None, message)
        except imaplib.IMAP4.error:
            status = "NO"
        client.logout()
    return limit, status


async def restore(http: httpx.AsyncClient) -> None:
    boss = await admin(http)
    reset = await http.put(SETTINGS, headers=boss.headers, json={"max_message_size": DEFAULT_SIZE})
    assert reset.status_code == 200, reset.text


async def test_a_new_size_limit_applies_to_new_connections_without_restart(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    before = await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 8000)
    assert before == (f"SIZE {DEFAULT_SIZE}", 250)
    try:
        saved = await http.put(SETTINGS, headers=boss.headers, json={"max_message_size": 4096})
        assert saved.status_code == 200, saved.text
        assert saved.json()["max_message_size"] == 4096
        assert "max_message_size" not in saved.json()["restart_required"]
        small = await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 1000)
        big = await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 8000)
        assert (small, big) == (("SIZE 4096", 250), ("SIZE 4096", 552))
    finally:
        await restore(http)
    assert await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 8000) == before


async def test_a_change_saved_by_another_node_is_picked_up_by_the_sync(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    assert server.settings_sync is not None and server.bus is not None
    address = f"limits-{secrets.token_hex(3)}@mailcue.local"
    await mailboxes.create_mailbox(address, bus=server.bus, password=PASSWORD)
    # Another node's PUT writes the same rows; this node learns of it by reading them.
    await stored.save_system({"max_message_size": 6000})
    try:
        assert await server.settings_sync.run_once() is True
        assert await server.settings_sync.run_once() is False  # nothing new the second time
        size, _ = await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 100)
        assert size == "SIZE 6000"
        imap = server.port("imap")
        fits = await asyncio.to_thread(imap_limit_and_append, imap, address, 5000)
        too_big = await asyncio.to_thread(imap_limit_and_append, imap, address, 7000)
        assert (fits, too_big) == (("APPENDLIMIT=6000", "OK"), ("APPENDLIMIT=6000", "NO"))
    finally:
        await restore(http)


@pytest.mark.parametrize("value", [0, 1023, 2**31])
async def test_an_out_of_range_size_is_400_and_changes_nothing(
    server: MailcueServer, http: httpx.AsyncClient, value: int
) -> None:
    boss = await admin(http)
    refused = await http.put(SETTINGS, headers=boss.headers, json={"max_message_size": value})
    assert refused.status_code == 400, refused.text
    size, _ = await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 100)
    assert size == f"SIZE {DEFAULT_SIZE}"


async def test_a_user_cannot_change_the_size_limit(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    user = await new_user(http)
    refused = await http.put(SETTINGS, headers=user.headers, json={"max_message_size": 2048})
    assert refused.status_code == 403, refused.text
    size, _ = await asyncio.to_thread(smtp_size_and_reply, server.port("smtp"), 100)
    assert size == f"SIZE {DEFAULT_SIZE}"
