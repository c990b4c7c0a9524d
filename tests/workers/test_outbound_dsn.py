"""Bounces as the sender reads them, on a real production node.

A mailbox submits over SMTP (STARTTLS + AUTH) to far-away recipients, with
RFC 3461 parameters (RET, ENVID, NOTIFY, ORCPT) where a test needs them;
dnsmasq points far.test at an aiosmtpd "remote MX" that refuses scripted
recipients. The bounce is then read back over the REST API (the raw .eml)
and parsed: its MIME structure, the returned message, the per-recipient
fields.
"""

from __future__ import annotations

import asyncio
import secrets
import smtplib
import ssl
from collections.abc import AsyncIterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
import pytest_asyncio

from accounts import Account, login
from conftest import ADMIN_PASSWORD, ADMIN_USER, node_settings
from dns_server import dns_server
from mailcue_server.app import MailcueServer
from mailcue_server.store import mailboxes
from outbound_rig import Remote, remote_smtp
from waiting import eventually

DOMAIN = "dsn-node.test"
PASSWORD = "sender-password-1"
ADMIN = ADMIN_PASSWORD + "-prod"
REFUSED = "550 5.1.1 No such user here"


@pytest_asyncio.fixture(scope="module")
async def remote() -> AsyncIterator[Remote]:
    async with remote_smtp() as far:
        yield far


@pytest_asyncio.fixture(scope="module")
async def server(
    tmp_path_factory: pytest.TempPathFactory, remote: Remote
) -> AsyncIterator[MailcueServer]:
    """A production node delivering far.test to ``remote``; bounces return headers by default."""
    async with dns_server(
        mx=[("far.test", "mx.far.test", 10)], hosts={"mx.far.test": ["127.0.0.1"]}
    ) as resolver:
        node = MailcueServer(
            node_settings(
                tmp_path_factory.mktemp("dsn-node"),
                mode="production",
                admin_password=ADMIN,
                secret_key="d" * 48,
                domain=DOMAIN,
                dns_resolver=resolver,
                outbound_smtp_port=remote.port,
                outbound_timeout=5.0,
                outbound_retry_base=3600.0,
            )
        )
        await node.start()
        try:
            yield node
        finally:
            await node.stop()


@pytest_asyncio.fixture(scope="module")
async def boss(server: MailcueServer) -> Account:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        return await login(client, ADMIN_USER, ADMIN)


async def new_sender(server: MailcueServer) -> str:
    assert server.bus is not None
    address = f"writer-{secrets.token_hex(3)}@{DOMAIN}"
    await mailboxes.create_mailbox(address, bus=server.bus, password=PASSWORD)
    return address


def far(name: str) -> str:
    return f"{name}-{secrets.token_hex(3)}@far.test"


def message(sender: str, subject: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: someone@far.test\r\nSubject: {subject}\r\n"
        f"Message-ID: <{secrets.token_hex(6)}@{DOMAIN}>\r\n\r\n"
        "The body, which only a full return carries.\r\n"
    ).encode()


def submit(
    server: MailcueServer,
    sender: str,
    raw: bytes,
    recipients: dict[str, list[str]],
    mail_options: list[str] | None = None,
) -> None:
    """MAIL, one RCPT per recipient with its own parameters, DATA: over STARTTLS + AUTH."""
    assert server.tls is not None
    context: ssl.SSLContext = server.tls.client_context()
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=10) as client:
        client.starttls(context=context)
        client.login(sender, PASSWORD)
        code, reply = client.mail(sender, mail_options or [])
        assert code == 250, reply
        for address, options in recipients.items():
            code, reply = client.rcpt(address, options)
            assert code == 250, reply
        code, reply = client.data(raw)
        assert code == 250, reply


async def bounces(http: httpx.AsyncClient, boss: Account, mailbox: str) -> list[bytes]:
    """The raw bytes of every bounce in ``mailbox``'s INBOX, read over REST."""
    listed = await http.get("/api/v1/emails", headers=boss.headers, params={"mailbox": mailbox})
    assert listed.status_code == 200, listed.text
    found = []
    for email in listed.json()["emails"]:
        if email["subject"] == "Undelivered Mail Returned to Sender":
            raw = await http.get(
                f"/api/v1/emails/{email['uid']}/raw",
                headers=boss.headers,
                params={"mailbox": mailbox},
            )
            assert raw.status_code == 200, raw.text
            found.append(raw.content)
    return found


async def one_bounce(http: httpx.AsyncClient, boss: Account, mailbox: str) -> bytes:
    async def arrived() -> bool:
        return len(await bounces(http, boss, mailbox)) > 0

    await eventually(arrived, timeout=15)
    [raw] = await bounces(http, boss, mailbox)
    return raw


async def queue_entry(http: httpx.AsyncClient, boss: Account, recipient: str) -> dict[str, Any]:
    listed = await http.get("/api/v1/system/queue", headers=boss.headers)
    assert listed.status_code == 200, listed.text
    for entry in listed.json()["entries"]:
        if any(r["address"] == recipient for r in entry["recipients"]):
            return dict(entry)
    raise AssertionError(f"{recipient} is not in the queue")


def parts(raw: bytes) -> tuple[EmailMessage, list[EmailMessage]]:
    dsn = message_from_bytes(raw, policy=policy.default)
    assert isinstance(dsn, EmailMessage)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    found = dsn.get_payload()
    assert isinstance(found, list) and len(found) == 3
    assert [part.get_content_type() for part in found[:2]] == [
        "text/plain",
        "message/delivery-status",
    ]
    return dsn, found


async def test_ret_full_returns_the_whole_message_with_original_recipient_and_envid(
    server: MailcueServer, http: httpx.AsyncClient, boss: Account, remote: Remote
) -> None:
    sender, nobody, fine = await new_sender(server), far("nobody"), far("fine")
    remote.rcpt_replies[nobody] = [REFUSED]
    raw = message(sender, "return all of it")
    await asyncio.to_thread(
        submit,
        server,
        sender,
        raw,
        {nobody: ["NOTIFY=FAILURE,DELAY", "ORCPT=rfc822;Team+2BSales@far.test"], fine: []},
        ["RET=FULL", "ENVID=batch+2B7"],
    )
    bounce = await one_bounce(http, boss, sender)

    _, (human, status, returned) = parts(bounce)
    assert nobody in human.get_content() and fine not in human.get_content()
    per_message, *per_recipient = status.get_payload()
    assert per_message["Original-Envelope-Id"] == "batch+7"
    [block] = per_recipient
    assert block["Original-Recipient"] == "rfc822;Team+Sales@far.test"
    assert block["Final-Recipient"] == f"rfc822; {nobody}"
    assert (block["Action"], block["Status"]) == ("failed", "5.1.1")
    assert returned.get_content_type() == "message/rfc822"
    [inner] = returned.get_payload()
    assert inner["Subject"] == "return all of it"
    assert "only a full return carries" in inner.get_content()
    # Byte for byte what was queued (our Received header and all), the body included.
    entry = await queue_entry(http, boss, nobody)
    queued = await http.get(f"/api/v1/system/queue/{entry['id']}/raw", headers=boss.headers)
    assert queued.status_code == 200 and queued.content.endswith(raw)
    assert queued.content in bounce
    by_address = {r["address"]: r for r in entry["recipients"]}
    assert by_address[nobody]["original_recipient"] == "rfc822;Team+Sales@far.test"
    assert by_address[nobody]["bounced_at"] is not None
    assert by_address[fine]["bounced_at"] is None and by_address[fine]["state"] == "delivered"


async def test_without_ret_a_bounce_returns_the_header_only(
    server: MailcueServer, http: httpx.AsyncClient, boss: Account, remote: Remote
) -> None:
    sender, nobody = await new_sender(server), far("nobody")
    remote.rcpt_replies[nobody] = [REFUSED]
    await asyncio.to_thread(submit, server, sender, message(sender, "header only"), {nobody: []})
    bounce = await one_bounce(http, boss, sender)

    _, (_, status, returned) = parts(bounce)
    assert returned.get_content_type() == "text/rfc822-headers"
    quoted = returned.get_payload(decode=True)
    assert b"Subject: header only" in quoted and b"only a full return" not in quoted
    per_message, block = status.get_payload()
    assert "Original-Envelope-Id" not in per_message
    assert "Original-Recipient" not in block  # no ORCPT was given


async def test_ret_hdrs_and_notify_never_are_honoured(
    server: MailcueServer, http: httpx.AsyncClient, boss: Account, remote: Remote
) -> None:
    sender, quiet, loud = await new_sender(server), far("quiet"), far("loud")
    remote.rcpt_replies[quiet] = [REFUSED]
    remote.rcpt_replies[loud] = [REFUSED]
    recipients = {quiet: ["NOTIFY=NEVER"], loud: ["NOTIFY=SUCCESS,FAILURE"]}
    raw = message(sender, "hdrs asked")
    await asyncio.to_thread(submit, server, sender, raw, recipients, ["RET=HDRS"])
    bounce = await one_bounce(http, boss, sender)

    _, (_, status, returned) = parts(bounce)
    assert returned.get_content_type() == "text/rfc822-headers"
    assert [str(b["Final-Recipient"]) for b in status.get_payload()[1:]] == [f"rfc822; {loud}"]
    entry = await queue_entry(http, boss, quiet)
    assert entry["state"] == "failed"
    # Both count as dealt with: the quiet one asked for no bounce and got none.
    assert all(r["bounced_at"] is not None for r in entry["recipients"])


def mail_replies(server: MailcueServer, sender: str, commands: list[str]) -> list[int]:
    """Raw MAIL/RCPT command lines after STARTTLS + AUTH; the reply code of each."""
    assert server.tls is not None
    context: ssl.SSLContext = server.tls.client_context()
    codes = []
    with smtplib.SMTP("127.0.0.1", server.port("submission"), timeout=10) as client:
        client.starttls(context=context)
        client.login(sender, PASSWORD)
        for command in commands:
            code, _ = client.docmd(command)
            codes.append(code)
    return codes


@pytest.mark.parametrize(
    ("commands", "codes"),
    [
        (["MAIL FROM:<{s}> RET=MAYBE"], [501]),
        (["MAIL FROM:<{s}> RET=FULL RET=HDRS"], [501]),
        (["MAIL FROM:<{s}> ENVID=a=b"], [501]),
        (["MAIL FROM:<{s}> ENVID=" + "x" * 101], [501]),
        (["MAIL FROM:<{s}> ENVID=bad+zz"], [501]),
        (["MAIL FROM:<{s}> RET="], [501]),
        (["MAIL FROM:<{s}> RET=WHOLE", "MAIL FROM:<{s}> RET=FULL"], [501, 250]),
        (["MAIL FROM:<{s}> RET=full", "RCPT TO:<a@far.test> NOTIFY=NEVER,FAILURE"], [250, 501]),
        (["MAIL FROM:<{s}>", "RCPT TO:<a@far.test> NOTIFY=SOMETIMES"], [250, 501]),
        (["MAIL FROM:<{s}>", "RCPT TO:<a@far.test> ORCPT=no-semicolon"], [250, 501]),
        (["MAIL FROM:<{s}>", "RCPT TO:<a@far.test> ORCPT=rfc822;"], [250, 501]),
        (["MAIL FROM:<{s}>", "RCPT TO:<a@far.test> ORCPT=rfc822;a+0Ab@far.test"], [250, 501]),
        (["MAIL FROM:<{s}>", "RCPT TO:<a@far.test> BOGUS=1"], [250, 555]),
        (["MAIL FROM:<{s}>", "RCPT TO:<a@far.test> notify=delay orcpt=x;y"], [250, 250]),
    ],
)  # fmt: skip
async def test_malformed_dsn_parameters_are_refused_with_501(
    server: MailcueServer, commands: list[str], codes: list[int]
) -> None:
    sender = await new_sender(server)
    lines = [command.format(s=sender) for command in commands]
    assert await asyncio.to_thread(mail_replies, server, sender, lines) == codes
