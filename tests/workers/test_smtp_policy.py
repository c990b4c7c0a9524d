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
from mailcue_server.store import aliases, mailboxes, message_queries, outbound_admin, senders

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


async def test_production_answers_a_malformed_recipient_with_501(
    production: MailcueServer,
) -> None:
    def replies() -> list[tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", production.port("smtp")) as client:
            client.ehlo("client.example")
            client.mail("someone@elsewhere.example")
            return [client.rcpt(bad) for bad in ("not-an-address", f"x@@{DOMAIN}")]

    assert await asyncio.to_thread(replies) == [(501, b"5.1.3 Bad recipient address syntax")] * 2


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
    page = await message_queries.list_page(target)
    assert [m.subject for m in page.messages] == ["hi"]
    assert await mailboxes.find_mailbox(alias) is None  # no mailbox made for the alias


async def test_authenticated_mail_to_the_world_is_signed_and_queued(
    production: MailcueServer,
) -> None:
    assert production.bus is not None and production.tls is not None
    sender = f"writer-{secrets.token_hex(3)}@{DOMAIN}"
    await mailboxes.create_mailbox(sender, bus=production.bus, password="writer-pass-1")
    context: ssl.SSLContext = production.tls.client_context()
    before, _ = await outbound_admin.list_entries()

    def submit() -> None:
        raw = f"From: {sender}\r\nTo: friend@remote.example\r\nSubject: out\r\n\r\nhi\r\n"
        with smtplib.SMTP("127.0.0.1", production.port("submission")) as client:
            client.starttls(context=context)
            client.login(sender, "writer-pass-1")
            client.sendmail(sender, ["friend@remote.example"], raw.encode())

    await asyncio.to_thread(submit)
    total, entries = await outbound_admin.list_entries()
    assert total == before + 1
    raw = await outbound_admin.raw_bytes(entries[0].id)
    # Relayed, not delivered: Return-Path is for the final delivery (RFC 5321 section 4.4).
    assert b"Return-Path:" not in raw.partition(b"\r\n\r\n")[0]
    record = production.dkim_record  # type: ignore[attr-defined]

    def lookup(name: str) -> str | None:
        return str(record["expected_value"]) if name == record["hostname"].rstrip(".") else None

    assert dkim.verify(raw, lookup).result.value == "pass"


def mail_from_replies(
    node: MailcueServer, login_as: tuple[str, str], senders: list[str]
) -> list[int]:
    """The reply code to ``MAIL FROM`` for each sender, after AUTH on the submission port."""
    assert node.tls is not None
    context: ssl.SSLContext = node.tls.client_context()
    codes = []
    with smtplib.SMTP("127.0.0.1", node.port("submission")) as client:
        client.starttls(context=context)
        client.login(*login_as)
        for sender in senders:
            codes.append(client.mail(sender)[0])
            client.rset()
    return codes


async def test_submission_sends_only_from_the_identitys_own_addresses(
    production: MailcueServer,
) -> None:
    assert production.bus is not None
    tag = secrets.token_hex(3)
    mine = f"mine-{tag}@{DOMAIN}"
    theirs = f"theirs-{tag}@{DOMAIN}"
    await mailboxes.create_mailbox(mine, bus=production.bus, password="mine-pass-1")
    await mailboxes.create_mailbox(theirs, bus=production.bus, password="theirs-pass-1")
    to_me = f"alias-{tag}@{DOMAIN}"
    await aliases.create_alias(to_me, [mine])
    chained = f"chained-{tag}@{DOMAIN}"
    await aliases.create_alias(chained, [to_me])
    catch_domain = f"catch-{tag}.test"
    await aliases.create_alias(f"@{catch_domain}", [mine])
    codes = await asyncio.to_thread(
        mail_from_replies,
        production,
        (mine, "mine-pass-1"),
        [
            mine,
            mine.upper(),
            to_me,
            chained,
            theirs,
            f"anyone@{catch_domain}",
            "x@else.example",
            "<>",
        ],
    )
    assert codes == [250, 250, 250, 250, 553, 553, 553, 553]


async def test_a_user_sends_from_owned_mailboxes_and_an_admin_from_managed_domains(
    production: MailcueServer,
) -> None:
    """A user's SMTP AUTH sends as their mailboxes; an admin's own name and password are
    refused on SMTP (master logins act as one mailbox), and the sender rule still lets an
    admin identity write as the managed domains (checked on the store, as SMTP would)."""
    assert production.bus is not None
    tag = secrets.token_hex(3)
    async with httpx.AsyncClient(base_url=production.http_url, timeout=30) as http:
        boss = await login(http, ADMIN_USER, ADMIN_PASSWORD + "-prod")
        made = await http.post(
            "/api/v1/auth/register",
            headers=boss.headers,
            json={
                "username": f"owner{tag}",
                "email": f"owner{tag}@elsewhere.example",
                "password": "owner-pass-12345",
            },
        )
        assert made.status_code in (200, 201), made.text
        user = await login(http, f"owner{tag}", "owner-pass-12345")
        owned = f"owned-{tag}@{DOMAIN}"
        created = await http.post(
            "/api/v1/mailboxes",
            headers=user.headers,
            json={"username": f"owned-{tag}", "password": "owned-pass-1", "domain": DOMAIN},
        )
        assert created.status_code == 201, created.text
        assert created.json()["address"] == owned
    other = f"unowned-{tag}@{DOMAIN}"
    await mailboxes.create_mailbox(other, bus=production.bus)
    user_codes = await asyncio.to_thread(
        mail_from_replies, production, (f"owner{tag}", "owner-pass-12345"), [owned, other]
    )
    with pytest.raises(smtplib.SMTPAuthenticationError):
        await asyncio.to_thread(
            mail_from_replies, production, (ADMIN_USER, ADMIN_PASSWORD + "-prod"), [other]
        )
    admin = senders.user_identity(ADMIN_USER)
    admin_may = [
        await senders.may_send_as(admin, sender)
        for sender in (other, f"postmaster@{DOMAIN}", "x@else.example")
    ]
    assert (user_codes, admin_may) == ([250, 553], [True, True, False])


async def test_a_username_shaped_like_an_address_does_not_own_that_address(
    production: MailcueServer,
) -> None:
    assert production.bus is not None
    victim = f"victim-{secrets.token_hex(3)}@{DOMAIN}"
    await mailboxes.create_mailbox(victim, bus=production.bus, password="victim-pass-1")
    async with httpx.AsyncClient(base_url=production.http_url, timeout=30) as http:
        boss = await login(http, ADMIN_USER, ADMIN_PASSWORD + "-prod")
        made = await http.post(
            "/api/v1/auth/register",
            headers=boss.headers,
            json={"username": victim, "email": victim, "password": "lookalike-pass-12345"},
        )
        assert made.status_code == 201, made.text
    # Logged in as the *user* of that name (the mailbox's own password differs).
    codes = await asyncio.to_thread(
        mail_from_replies, production, (victim, "lookalike-pass-12345"), [victim]
    )
    assert codes == [553]


async def test_a_master_login_sends_as_that_mailbox_only(production: MailcueServer) -> None:
    """``<address>*<admin>`` acts as the mailbox, not as the admin (who may use the domain)."""
    assert production.bus is not None
    tag = secrets.token_hex(3)
    box = f"support-{tag}@{DOMAIN}"
    await mailboxes.create_mailbox(box, bus=production.bus)  # no password of its own
    codes = await asyncio.to_thread(
        mail_from_replies,
        production,
        (f"{box}*{ADMIN_USER}", ADMIN_PASSWORD + "-prod"),
        [box, f"postmaster@{DOMAIN}", "x@else.example"],
    )
    assert codes == [250, 553, 553]


async def test_production_refuses_to_turn_the_catch_all_on(production: MailcueServer) -> None:
    async with httpx.AsyncClient(base_url=production.http_url, timeout=30) as http:
        boss = await login(http, ADMIN_USER, ADMIN_PASSWORD + "-prod")
        url = "/api/v1/system/settings"
        on = await http.put(url, headers=boss.headers, json={"catch_all_enabled": True})
        off = await http.put(url, headers=boss.headers, json={"catch_all_enabled": False})
        shown = await http.get(url, headers=boss.headers)
    assert on.status_code == 400, on.text
    assert "production" in on.json()["detail"]
    assert off.status_code == 200, off.text
    assert shown.json()["catch_all_enabled"] is False
    codes = await asyncio.to_thread(
        rcpt_replies, production.port("smtp"), [f"nobody-{secrets.token_hex(3)}@{DOMAIN}"]
    )
    assert codes == [550]
