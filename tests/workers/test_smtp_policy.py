"""Who SMTP accepts mail for, in production mode, and where aliases send it."""

from __future__ import annotations

import asyncio
import secrets
import smtplib
import ssl
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from accounts import login
from conftest import ADMIN_PASSWORD, ADMIN_USER, node_settings
from mailcue_server.app import MailcueServer
from mailcue_server.mail import dkim
from mailcue_server.store import aliases, mailboxes, messages, outbound

DOMAIN = "prod-policy.test"
SECRET = "s" * 48


@pytest_asyncio.fixture(scope="module")
async def production(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailcueServer]:
    """A production node; its queue worker polls rarely, so queued mail stays put to be seen."""
    node = MailcueServer(
        node_settings(
            tmp_path_factory.mktemp("production"),
            mode="production",
            admin_password=ADMIN_PASSWORD + "-prod",
            secret_key=SECRET,
            domain=DOMAIN,
            outbound_poll_interval=300,
            outbound_retry_base=3600,
        )
    )
    await node.start()
    async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as http:
        boss = await login(http, ADMIN_USER, ADMIN_PASSWORD + "-prod")
        made = await http.post("/api/v1/domains", headers=boss.headers, json={"name": DOMAIN})
        assert made.status_code == 201, made.text
        node.dkim_record = next(  # type: ignore[attr-defined]
            r for r in made.json()["dns_records"] if "_domainkey" in r["hostname"]
        )
    yield node
    await node.stop()


def rcpt_replies(port: int, recipients: list[str]) -> list[int]:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo("client.example")
        client.mail("someone@elsewhere.example")
        return [client.rcpt(address)[0] for address in recipients]


async def test_production_accepts_only_our_mailboxes_and_aliases(
    production: MailcueServer,
) -> None:
    assert production.bus is not None
    local = f"box-{secrets.token_hex(3)}@{DOMAIN}"
    await mailboxes.create_mailbox(local, bus=production.bus, password="mailbox-pass-1")
    alias = f"team-{secrets.token_hex(3)}@{DOMAIN}"
    await aliases.create_alias(alias, [local])
    codes = await asyncio.to_thread(
        rcpt_replies,
        production.port("smtp"),
        [local, alias, f"nobody@{DOMAIN}", "victim@elsewhere.example"],
    )
    assert codes == [250, 250, 550, 550]


def send(port: int, sender: str, to: str, subject: str) -> None:
    raw = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n\r\nbody\r\n"
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.sendmail(sender, [to], raw.encode())


async def test_an_alias_delivers_to_its_destination(production: MailcueServer) -> None:
    assert production.bus is not None
    target = f"dest-{secrets.token_hex(3)}@{DOMAIN}"
    await mailboxes.create_mailbox(target, bus=production.bus)
    alias = f"sales-{secrets.token_hex(3)}@{DOMAIN}"
    await aliases.create_alias(alias, [target])
    await asyncio.to_thread(send, production.port("smtp"), "a@elsewhere.example", alias, "hi")
    page = await messages.list_page(target)
    assert [m.subject for m in page.messages] == ["hi"]
    assert await mailboxes.find_mailbox(alias) is None  # no mailbox made for the alias


async def test_authenticated_mail_to_the_world_is_signed_and_queued(
    production: MailcueServer,
) -> None:
    assert production.bus is not None and production.tls is not None
    sender = f"writer-{secrets.token_hex(3)}@{DOMAIN}"
    await mailboxes.create_mailbox(sender, bus=production.bus, password="writer-pass-1")
    context: ssl.SSLContext = production.tls.client_context()
    before, _ = await outbound.list_entries()

    def submit() -> None:
        raw = f"From: {sender}\r\nTo: friend@remote.example\r\nSubject: out\r\n\r\nhi\r\n"
        with smtplib.SMTP("127.0.0.1", production.port("submission")) as client:
            client.starttls(context=context)
            client.login(sender, "writer-pass-1")
            client.sendmail(sender, ["friend@remote.example"], raw.encode())

    await asyncio.to_thread(submit)
    total, entries = await outbound.list_entries()
    assert total == before + 1
    raw = await outbound.raw_bytes(entries[0].id)
    record = production.dkim_record  # type: ignore[attr-defined]

    def lookup(name: str) -> str | None:
        return str(record["expected_value"]) if name == record["hostname"].rstrip(".") else None

    assert dkim.verify(raw, lookup).result.value == "pass"
