"""The SMTP envelope, Return-Path, long lines and RCPT syntax, end to end.

Mail goes in over real sockets (smtplib, LMTP and IMAP by hand, REST inject)
and is read back as a user would: the REST detail, the GraphQL detail and the
raw ``.eml``. The node also listens for LMTP.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import re
import secrets
import smtplib
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from accounts import PASSWORD, Account, admin, graphql, new_api_key, new_mailbox, new_user
from conftest import node_settings
from mailcue_server.app import MailcueServer
from mailcue_server.store import mailboxes

SENDER = "app@sender.test"
HELO = "client.test"
TRACE = re.compile(
    rb"\AReturn-Path: <(?P<path>[^<>\r\n]*)>\r\n"
    rb"Received: from (?P<helo>\S+) \(\[(?P<ip>[^\]]+)\]\)\r\n"
    rb"\tby \S+ with (?P<proto>\w+) id (?P<id>[0-9A-F]{16})(?:\r\n\tfor <[^>]+>)?;?\r\n"
    rb"\t?[^\r\n]+\r\n"
)
DETAIL = """
query ($uid: String!, $mailbox: String) {
  email(uid: $uid, mailbox: $mailbox) {
    bccAddresses warnings
    envelope {
      mailFrom rcptTo deliveredTo bcc clientIp helo tls listener transactionId authenticatedAs
    }
  }
}
"""


@pytest_asyncio.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailcueServer]:
    """This module's node: the shared test-mode settings plus an LMTP listener."""
    node = MailcueServer(node_settings(tmp_path_factory.mktemp("envelope"), lmtp_port=0))
    await node.start()
    yield node
    await node.stop()


def address(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(4)}@envelope.test"


def mail(to: str, *, cc: str | None = None, body: bytes = b"Hello.\r\n") -> bytes:
    head = f"From: App <{SENDER}>\r\nTo: {to}\r\n" + (f"Cc: {cc}\r\n" if cc else "")
    head += f"Subject: envelope\r\nMessage-ID: <{secrets.token_hex(8)}@sender.test>\r\n\r\n"
    return head.encode() + body


def smtp_send(
    port: int,
    sender: str,
    rcpts: list[str],
    raw: bytes,
    *,
    tls: ssl.SSLContext | None = None,
    login: tuple[str, str] | None = None,
) -> None:
    with smtplib.SMTP("127.0.0.1", port, local_hostname=HELO, timeout=30) as client:
        if tls is not None:
            client.starttls(context=tls)
        if login is not None:
            client.login(*login)
        client.sendmail(sender, rcpts, raw)


async def only_uid(http: httpx.AsyncClient, headers: dict[str, str], mailbox: str) -> str:
    listed = await http.get("/api/v1/emails", params={"mailbox": mailbox}, headers=headers)
    assert listed.status_code == 200, listed.text
    [email] = listed.json()["emails"]
    return str(email["uid"])


async def rest_detail(
    http: httpx.AsyncClient, headers: dict[str, str], mailbox: str, uid: str
) -> dict[str, Any]:
    got = await http.get(f"/api/v1/emails/{uid}", params={"mailbox": mailbox}, headers=headers)
    assert got.status_code == 200, got.text
    detail: dict[str, Any] = got.json()
    return detail


async def eml(http: httpx.AsyncClient, headers: dict[str, str], mailbox: str, uid: str) -> bytes:
    got = await http.get(f"/api/v1/emails/{uid}/raw", params={"mailbox": mailbox}, headers=headers)
    assert got.status_code == 200, got.text
    return got.content


async def graphql_detail(
    http: httpx.AsyncClient, account: Account, mailbox: str, uid: str
) -> dict[str, Any]:
    answer = await graphql(http, account, DETAIL, uid=uid, mailbox=mailbox)
    assert "errors" not in answer, answer
    email: dict[str, Any] = answer["data"]["email"]
    return email


def logged(caplog: pytest.LogCaptureFixture) -> set[str]:
    """Every line the server logged at INFO (a group commit logs its messages in one record)."""
    return {
        line
        for record in caplog.records
        if record.name.startswith("mailcue_server") and record.levelno == logging.INFO
        for line in record.getMessage().splitlines()
    }


def camel(envelope: dict[str, Any]) -> dict[str, Any]:
    """The REST envelope under GraphQL's field names."""
    return {re.sub(r"_(\w)", lambda m: m.group(1).upper(), k): v for k, v in envelope.items()}


# --- the envelope, Return-Path and Bcc ---------------------------------------------------


async def test_smtp_mail_shows_its_envelope_return_path_and_bcc(
    server: MailcueServer, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailcue_server")
    boss = await admin(http)
    to, cc, hidden = address("to"), address("cc"), address("bcc")
    sent = mail(to, cc=cc)
    await asyncio.to_thread(smtp_send, server.port("smtp"), SENDER, [to, cc, hidden], sent)

    uid = await only_uid(http, boss.headers, hidden)
    raw = await eml(http, boss.headers, hidden, uid)
    trace = TRACE.match(raw)
    assert trace is not None, raw[:300]
    # Byte-exact: Return-Path first, then Received, then exactly what DATA carried.
    assert raw[trace.end() :] == sent
    assert raw.startswith(f"Return-Path: <{SENDER}>\r\nReceived: ".encode())
    assert (trace["helo"], trace["ip"], trace["proto"]) == (HELO.encode(), b"127.0.0.1", b"ESMTP")

    detail = await rest_detail(http, boss.headers, hidden, uid)
    assert detail["envelope"] == {
        "mail_from": SENDER,
        "rcpt_to": [to, cc, hidden],
        "delivered_to": [hidden],
        "bcc": [hidden],
        "client_ip": "127.0.0.1",
        "helo": HELO,
        "tls": False,
        "listener": "smtp",
        "transaction_id": trace["id"].decode(),
        "authenticated_as": None,
    }
    assert detail["bcc_addresses"] == [hidden]
    assert detail["raw_headers"]["Return-Path"] == f"<{SENDER}>"
    assert detail["warnings"] == []
    shown = await graphql_detail(http, boss, hidden, uid)
    assert shown["envelope"] == camel(detail["envelope"])
    assert shown["bccAddresses"] == [hidden]

    # The copy of a To recipient names the same envelope; Bcc is the same list.
    to_uid = await only_uid(http, boss.headers, to)
    to_detail = await rest_detail(http, boss.headers, to, to_uid)
    assert to_detail["envelope"]["delivered_to"] == [to]
    assert to_detail["envelope"]["bcc"] == [hidden]

    # One INFO line per stored copy.
    lines = logged(caplog)
    assert f"received {uid} for <{hidden}> from <{SENDER}>, {len(raw)} bytes" in lines
    assert f"received {to_uid} for <{to}> from <{SENDER}>, {len(raw)} bytes" in lines


async def test_the_null_sender_gives_an_empty_return_path(
    server: MailcueServer, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mailcue_server")
    boss = await admin(http)
    to = address("bounce")
    sent = mail(to)
    await asyncio.to_thread(smtp_send, server.port("smtp"), "<>", [to], sent)
    uid = await only_uid(http, boss.headers, to)
    raw = await eml(http, boss.headers, to, uid)
    assert raw.startswith(b"Return-Path: <>\r\nReceived: from client.test ")
    assert raw.endswith(b"\r\n" + sent)
    detail = await rest_detail(http, boss.headers, to, uid)
    assert detail["envelope"]["mail_from"] == ""
    lines = logged(caplog)
    assert f"received {uid} for <{to}> from <>, {len(raw)} bytes" in lines


async def test_starttls_and_auth_are_recorded(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    assert server.tls is not None
    context: ssl.SSLContext = server.tls.client_context()
    boss = await admin(http)
    author = await new_mailbox(http, boss)
    plain_to, secure_to = address("starttls"), address("submitted")
    await asyncio.to_thread(
        smtp_send, server.port("smtp"), SENDER, [plain_to], mail(plain_to), tls=context
    )
    await asyncio.to_thread(
        smtp_send,
        server.port("submission"),
        author,
        [secure_to],
        mail(secure_to),
        tls=context,
        login=(author, PASSWORD),
    )

    uid = await only_uid(http, boss.headers, plain_to)
    envelope = (await rest_detail(http, boss.headers, plain_to, uid))["envelope"]
    assert (envelope["tls"], envelope["authenticated_as"], envelope["listener"]) == (
        True,
        None,
        "smtp",
    )
    uid = await only_uid(http, boss.headers, secure_to)
    raw = await eml(http, boss.headers, secure_to, uid)
    trace = TRACE.match(raw)
    assert trace is not None and trace["proto"] == b"ESMTPSA"
    assert trace["path"] == author.encode()
    envelope = (await rest_detail(http, boss.headers, secure_to, uid))["envelope"]
    assert (envelope["tls"], envelope["authenticated_as"], envelope["listener"]) == (
        True,
        author,
        "submission",
    )
    assert (envelope["mail_from"], envelope["rcpt_to"]) == (author, [secure_to])


async def test_a_reader_sees_only_the_recipients_that_reached_their_mailbox(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    first, second = await new_user(http), await new_user(http)
    named, blind = await new_mailbox(http, first), await new_mailbox(http, second)
    await asyncio.to_thread(smtp_send, server.port("smtp"), SENDER, [named, blind], mail(named))

    # The To recipient must not learn of the Bcc recipient, anywhere in the answer.
    uid = await only_uid(http, first.headers, named)
    got = await http.get(f"/api/v1/emails/{uid}", params={"mailbox": named}, headers=first.headers)
    assert got.status_code == 200 and blind not in got.text
    envelope = got.json()["envelope"]
    assert (envelope["rcpt_to"], envelope["delivered_to"], envelope["bcc"]) == (
        [named],
        [named],
        [],
    )
    assert got.json()["bcc_addresses"] == []
    answer = await graphql(http, first, DETAIL, uid=uid, mailbox=named)
    assert blind not in str(answer) and answer["data"]["email"]["envelope"]["rcptTo"] == [named]

    # The Bcc recipient learns that they got a blind copy, and nothing about others' Bcc.
    blind_uid = await only_uid(http, second.headers, blind)
    detail = await rest_detail(http, second.headers, blind, blind_uid)
    assert (detail["envelope"]["rcpt_to"], detail["envelope"]["bcc"]) == ([blind], [blind])
    assert detail["bcc_addresses"] == [blind]

    # An administrator sees the whole list, unless their key is held to some mailboxes.
    detail = await rest_detail(http, boss.headers, named, uid)
    assert (detail["envelope"]["rcpt_to"], detail["envelope"]["bcc"]) == ([named, blind], [blind])
    key = await new_api_key(http, boss, scopes=["email:read"], allowed_mailboxes=[named])
    detail = await rest_detail(http, {"X-API-Key": key["key"]}, named, uid)
    assert detail["envelope"]["rcpt_to"] == [named]


async def test_lmtp_copies_name_the_whole_transaction(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    one, two = address("lmtp-one"), address("lmtp-two")
    sent = mail(one)

    def deliver() -> list[bytes]:
        # By hand: smtplib.LMTP reads one reply after DATA, LMTP sends one per recipient.
        with socket.create_connection(("127.0.0.1", server.port("lmtp")), timeout=30) as sock:
            replies = sock.makefile("rb")
            commands = [b"LHLO mx.test", b"MAIL FROM:<>", f"RCPT TO:<{one}>".encode()]
            commands += [f"RCPT TO:<{two}>".encode(), b"DATA"]
            codes = [replies.readline()[:3]]
            for command in commands:
                sock.sendall(command + b"\r\n")
                line = replies.readline()
                while line[3:4] == b"-":
                    line = replies.readline()
                codes.append(line[:3])
            sock.sendall(sent + b".\r\n")
            codes += [replies.readline()[:3], replies.readline()[:3]]
            sock.sendall(b"QUIT\r\n")
            return codes

    assert (
        await asyncio.to_thread(deliver)
        == [b"220", b"250", b"250", b"250", b"250", b"354"] + [b"250"] * 2
    )
    uid = await only_uid(http, boss.headers, two)
    raw = await eml(http, boss.headers, two, uid)
    assert raw.startswith(b"Return-Path: <>\r\nReceived: from mx.test ([127.0.0.1])")
    envelope = (await rest_detail(http, boss.headers, two, uid))["envelope"]
    assert (envelope["listener"], envelope["rcpt_to"], envelope["delivered_to"]) == (
        "lmtp",
        [one, two],
        [two],
    )


async def test_appended_and_injected_mail_have_no_envelope(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    box = await new_mailbox(http, boss)
    injected = await http.post(
        "/api/v1/emails/inject",
        headers=boss.headers,
        json={
            "mailbox": box,
            "from_address": SENDER,
            "to_addresses": [box],
            "subject": "injected",
            "text_body": "z" * 5000,  # accepted: the message is built with short lines
        },
    )
    assert injected.status_code == 201, injected.text
    uid = injected.json()["uid"]
    detail = await rest_detail(http, boss.headers, box, uid)
    assert (detail["envelope"], detail["warnings"]) == (None, [])
    assert "z" * 5000 in (detail["text_body"] or "")
    shown = await graphql_detail(http, boss, box, uid)
    assert shown["envelope"] is None


# --- long lines ---------------------------------------------------------------------------


async def test_lines_over_998_octets_are_stored_unchanged_and_reported(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    to = address("long")
    body = b"short\r\n" + b"y" * 5000 + b"\r\n" + b"." * 999 + b"\r\n" + b"k" * 998 + b"\r\n"
    sent = mail(to, body=body)
    await asyncio.to_thread(smtp_send, server.port("smtp"), SENDER, [to], sent)

    uid = await only_uid(http, boss.headers, to)
    raw = await eml(http, boss.headers, to, uid)
    trace = TRACE.match(raw)
    assert trace is not None and raw[trace.end() :] == sent
    lines = raw.split(b"\r\n")
    long_at = lines.index(b"y" * 5000) + 1
    assert lines[long_at] == b"." * 999  # dot-unstuffed, and just over the limit
    expected = [
        f"line {long_at} is 5,000 octets; RFC 5322 allows 998",
        f"line {long_at + 1} is 999 octets; RFC 5322 allows 998",
    ]
    detail = await rest_detail(http, boss.headers, to, uid)
    assert detail["warnings"] == expected
    assert (await graphql_detail(http, boss, to, uid))["warnings"] == expected


async def test_imap_append_accepts_long_lines(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    boss = await admin(http)
    box = await new_mailbox(http, boss)
    await mailboxes.set_password(box, "imap-pass-1")
    appended = b"Subject: appended\r\n\r\n" + b"w" * 5000 + b"\r\n"

    def append() -> str:
        client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=30)
        try:
            client.login(box, "imap-pass-1")
            typ, data = client.append("INBOX", "", None, appended)
            return f"{typ} {data!r}"
        finally:
            client.logout()

    assert (await asyncio.to_thread(append)).startswith("OK")
    uid = await only_uid(http, boss.headers, box)
    assert await eml(http, boss.headers, box, uid) == appended
    detail = await rest_detail(http, boss.headers, box, uid)
    assert detail["envelope"] is None
    assert detail["warnings"] == ["line 3 is 5,000 octets; RFC 5322 allows 998"]


# --- RCPT syntax --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad", ["not-an-address", "@envelope.test", "someone@", "two@@envelope.test", "a b@c.test"]
)
async def test_a_malformed_recipient_is_501_not_unknown_user(
    server: MailcueServer, bad: str
) -> None:
    def rcpt() -> tuple[int, bytes, int]:
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=30) as client:
            client.ehlo(HELO)
            client.mail(SENDER)
            code, text = client.rcpt(bad)
            still = client.rcpt(address("fine"))[0]
            return code, text, still

    code, text, still = await asyncio.to_thread(rcpt)
    assert (code, text) == (501, b"5.1.3 Bad recipient address syntax")
    assert still == 250
