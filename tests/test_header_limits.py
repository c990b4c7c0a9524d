"""Header limits at receipt on every way in, and reading big old mail without a stall.

A message of 1,000,000 header fields stalled the whole server for 18 s each
time its detail was read. SMTP, IMAP APPEND and the API's inject now refuse
a header over 1,000 fields or 256 KiB (``mail/header_limits.py``), naming
the limit; mail stored before stays readable, parsed off the event loop
while the other listeners answer.
"""

from __future__ import annotations

import asyncio
import imaplib
import smtplib
import time
from typing import Any

import httpx
import pytest

from accounts import PASSWORD, Account, admin, new_mailbox
from mailcue_server.app import MailcueServer
from mailcue_server.store.ingest import ingest

ANSWER_WITHIN = 1.0
TOO_MANY = "Message header has more than 1,000 fields"
TOO_LARGE = "Message header is larger than 262,144 bytes"


def fields(count: int) -> bytes:
    return b"".join(b"X-Field-%d: value\r\n" % n for n in range(count))


def message(header: bytes, subject: str = "limits") -> bytes:
    return b"From: a@client.test\r\nSubject: %s\r\n%s\r\nbody\r\n" % (subject.encode(), header)


# One field of 300 KB, folded over lines of 1,000 octets.
FOLDED_300K = b"X-Big: start\r\n" + (b" " + b"y" * 997 + b"\r\n") * 300


@pytest.fixture
async def boss(http: httpx.AsyncClient) -> Account:
    return await admin(http)


@pytest.fixture
async def address(http: httpx.AsyncClient, boss: Account) -> str:
    return await new_mailbox(http, boss)


async def subjects(http: httpx.AsyncClient, boss: Account, address: str) -> list[str]:
    listing = await http.get("/api/v1/emails", headers=boss.headers, params={"mailbox": address})
    assert listing.status_code == 200, listing.text
    return [item["subject"] for item in listing.json()["emails"]]


@pytest.mark.parametrize(
    ("header", "reply"),
    [(fields(1001), TOO_MANY), (FOLDED_300K, TOO_LARGE)],
    ids=["count", "size"],
)
async def test_smtp_refuses_a_header_over_the_limits_with_552(
    server: MailcueServer,
    http: httpx.AsyncClient,
    boss: Account,
    address: str,
    header: bytes,
    reply: str,
) -> None:
    def send(raw: bytes) -> None:
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=10) as client:
            client.sendmail("a@client.test", [address], raw)

    with pytest.raises(smtplib.SMTPDataError) as refused:
        await asyncio.to_thread(send, message(header))
    assert (refused.value.smtp_code, refused.value.smtp_error.decode()) == (552, f"5.3.4 {reply}")
    await asyncio.to_thread(send, message(fields(990), "within"))
    assert await subjects(http, boss, address) == ["within"]


async def test_imap_append_over_the_limits_is_no_limit(
    server: MailcueServer, http: httpx.AsyncClient, boss: Account, address: str
) -> None:
    def append(raw: bytes) -> tuple[str, list[Any]]:
        client = imaplib.IMAP4("127.0.0.1", server.port("imap"), timeout=10)
        try:
            client.login(address, PASSWORD)
            return client.append("INBOX", None, None, raw)
        finally:
            client.logout()

    many = await asyncio.to_thread(append, message(fields(1001)))
    large = await asyncio.to_thread(append, message(FOLDED_300K))
    nul = await asyncio.to_thread(append, message(b"X-Nul: a\0b\r\n"))
    within = await asyncio.to_thread(append, message(fields(10), "within"))

    assert many == ("NO", [b"[LIMIT] " + TOO_MANY.encode()])
    assert large == ("NO", [b"[LIMIT] " + TOO_LARGE.encode()])
    assert nul == ("NO", [b"[LIMIT] Message contains a NUL character"])  # RFC 3501 sec. 9
    assert within[0] == "OK"
    assert await subjects(http, boss, address) == ["within"]


async def test_inject_over_the_limits_is_400_and_a_bulk_item_fails_alone(
    http: httpx.AsyncClient, boss: Account, address: str
) -> None:
    item = {
        "mailbox": address,
        "from_address": "a@client.test",
        "to_addresses": [address],
        "subject": "many",
        "text_body": "body",
        "headers": {f"X-Field-{n}": "value" for n in range(1001)},
    }
    within = {**item, "subject": "within", "headers": {"X-One": "value"}}

    single = await http.post("/api/v1/emails/inject", headers=boss.headers, json=item)
    bulk = await http.post(
        "/api/v1/emails/bulk-inject", headers=boss.headers, json={"emails": [within, item]}
    )

    assert (single.status_code, single.json()) == (400, {"detail": TOO_MANY})
    assert bulk.status_code == 201, bulk.text
    assert (bulk.json()["injected"], bulk.json()["errors"]) == (1, [f"1: {TOO_MANY}"])
    assert await subjects(http, boss, address) == ["within"]


async def test_a_stored_message_over_the_limits_is_read_while_others_answer(
    server: MailcueServer, http: httpx.AsyncClient, boss: Account, address: str
) -> None:
    """Mail stored before the limits: its detail parses for seconds, in a thread."""
    assert server.bus is not None
    raw = message(fields(40_000), "old and huge")
    [stored] = (await ingest(raw, [address], bus=server.bus)).stored
    path = f"/api/v1/emails/{stored.uid}"

    def smtp_banner() -> float:
        started = time.monotonic()
        with smtplib.SMTP("127.0.0.1", server.port("smtp"), timeout=ANSWER_WITHIN) as smtp:
            smtp.noop()
        return time.monotonic() - started

    started = time.monotonic()
    reading = asyncio.create_task(
        http.get(path, headers=boss.headers, params={"mailbox": address}, timeout=120)
    )
    waits: list[float] = []
    while not reading.done():
        waits.append(await asyncio.to_thread(smtp_banner))
        health_started = time.monotonic()
        async with httpx.AsyncClient(base_url=server.http_url, timeout=ANSWER_WITHIN) as other:
            assert (await other.get("/api/v1/health")).status_code == 200
        waits.append(time.monotonic() - health_started)
    detail = await reading

    assert detail.status_code == 200, detail.text
    assert detail.json()["raw_headers"]["X-Field-39999"] == "value"
    assert time.monotonic() - started > ANSWER_WITHIN  # the others were asked during the parse
    assert len(waits) >= 2
    assert max(waits) < ANSWER_WITHIN, waits
