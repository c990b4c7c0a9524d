"""Inbound SPF, DKIM and DMARC against a real DNS server (dnsmasq) holding the records.

``authenticate`` is called as the SMTP worker calls it, with the message a
client sent and the envelope it gave; its header is read back the way the
email detail reads it. The last test runs the whole path through a node's
SMTP port and the REST/GraphQL detail.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
import pytest
import pytest_asyncio

from accounts import admin
from conftest import node_settings
from dns_server import dns_server
from mailcue_server.app import MailcueServer
from mailcue_server.config import parse_nameserver
from mailcue_server.mail import dkim as mail_dkim
from mailcue_server.mail.auth_results import AuthenticationResults, trusted_results
from mailcue_server.workers.smtp.inbound_auth import THREAD_GRACE, authenticate

US = "mx.mailcue.test"
CLIENT_IP = "127.0.0.1"
RECEIVED = b"Received: from client ([127.0.0.1])\r\n\tby mx.mailcue.test with ESMTP id 1; x\r\n"


def message(domain: str, subject: str = "hello") -> bytes:
    return (
        f"From: Alice <alice@{domain}>\r\n"
        "To: bob@mailcue.test\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
        f"Message-ID: <{subject}@{domain}>\r\n"
        "\r\n"
        "The numbers are up.\r\n"
    ).encode()


def chunks(text: str, size: int = 250) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


@pytest.fixture(scope="module")
def key() -> mail_dkim.DkimKeyPair:
    return mail_dkim.generate_key(mail_dkim.DkimKeyType.RSA)


def zone(key: mail_dkim.DkimKeyPair) -> dict[str, Any]:
    record = mail_dkim.txt_record(key.key_type, key.public_key)
    return {
        "txt": {
            "good.test": ["v=spf1 ip4:127.0.0.1 -all"],
            "sel._domainkey.good.test": chunks(record),
            "_dmarc.good.test": ["v=DMARC1; p=reject"],
            "strict.test": ["v=spf1 ip4:192.0.2.1 -all"],
            "_dmarc.strict.test": ["v=DMARC1; p=quarantine"],
            "via-mx.test": ["v=spf1 include:nothing-here.via-mx.test mx -all"],
            "nothing-here.via-mx.test": ["v=spf1 ip4:192.0.2.7 -all"],
        },
        "mx": [("via-mx.test", "mail.via-mx.test", 10)],
        "hosts": {"mail.via-mx.test": ["127.0.0.1"]},
    }


@pytest_asyncio.fixture(scope="module")
async def resolver(key: mail_dkim.DkimKeyPair) -> AsyncIterator[str]:
    async with dns_server(**zone(key)) as address:
        yield address


async def check(
    raw: bytes, resolver: str, *, mail_from: str, helo: str = "client.good.test"
) -> tuple[bytes, AuthenticationResults]:
    field = await authenticate(
        raw,
        peer_ip=CLIENT_IP,
        helo=helo,
        mail_from=mail_from,
        hostname=US,
        nameserver=parse_nameserver(resolver),
        timeout=2.0,
    )
    assert field.startswith(b"Authentication-Results: mx.mailcue.test;") and field.endswith(
        b"\r\n"
    )
    read = trusted_results(field + RECEIVED + raw, US)
    assert read is not None, field
    return field, read


async def test_signed_mail_from_a_permitted_ip_passes_all_three(
    resolver: str, key: mail_dkim.DkimKeyPair
) -> None:
    signed = mail_dkim.sign(message("good.test"), "good.test", "sel", key.private_key_pem)
    field, read = await check(signed, resolver, mail_from="bounces@good.test")
    assert (read.spf.result, read.spf.domain) == ("pass", "good.test")
    assert [(c.result, c.domain, c.selector) for c in read.dkim] == [("pass", "good.test", "sel")]
    assert (read.dmarc.result, read.dmarc.from_domain, read.dmarc.policy) == (
        "pass",
        "good.test",
        "reject",
    )
    assert b"spf=pass smtp.mailfrom=good.test" in field
    assert b"dkim=pass header.d=good.test header.s=sel" in field
    assert b"dmarc=pass header.from=good.test policy.dmarc=reject" in field


async def test_a_tampered_body_fails_dkim_and_then_dmarc(
    resolver: str, key: mail_dkim.DkimKeyPair
) -> None:
    signed = mail_dkim.sign(message("good.test"), "good.test", "sel", key.private_key_pem)
    tampered = signed.replace(b"numbers are up", b"numbers are down")
    # The envelope sender is another domain, so SPF cannot rescue DMARC.
    _, read = await check(tampered, resolver, mail_from="list@bare.test")
    assert read.spf.result == "none" and read.spf.domain == "bare.test"
    assert [(c.result, c.domain) for c in read.dkim] == [("fail", "good.test")]
    assert "body hash" in read.dkim[0].reason
    assert (read.dmarc.result, read.dmarc.policy) == ("fail", "reject")


async def test_spf_fail_from_an_ip_the_record_does_not_list(resolver: str) -> None:
    _, read = await check(message("strict.test"), resolver, mail_from="bounces@strict.test")
    assert (read.spf.result, read.spf.domain) == ("fail", "strict.test")
    assert read.dkim == () and read.dkim_summary.result == "none"
    assert (read.dmarc.result, read.dmarc.policy) == ("fail", "quarantine")


async def test_spf_follows_include_and_mx_through_our_resolver(resolver: str) -> None:
    _, read = await check(message("via-mx.test"), resolver, mail_from="a@via-mx.test")
    assert read.spf.result == "pass"
    assert read.dmarc.result == "none"


async def test_a_domain_without_records_is_none_everywhere(resolver: str) -> None:
    field, read = await check(message("bare.test"), resolver, mail_from="a@bare.test")
    assert (read.spf.result, read.dkim, read.dmarc.result) == ("none", (), "none")
    assert b"dkim=none" in field and b"header.from=bare.test" in field


async def test_a_subdomain_uses_the_organizational_record(
    resolver: str, key: mail_dkim.DkimKeyPair
) -> None:
    signed = mail_dkim.sign(message("news.good.test"), "good.test", "sel", key.private_key_pem)
    _, read = await check(signed, resolver, mail_from="")
    assert read.spf.helo and read.spf.domain == "client.good.test"
    assert read.dkim[0].result == "pass"
    assert (read.dmarc.result, read.dmarc.from_domain) == ("pass", "news.good.test")


async def test_a_forged_header_of_ours_is_not_what_is_read(resolver: str) -> None:
    forged = (
        b"Authentication-Results: mx.mailcue.test; spf=pass smtp.mailfrom=strict.test;"
        b" dkim=pass header.d=strict.test; dmarc=pass header.from=strict.test\r\n"
    )
    _, read = await check(forged + message("strict.test"), resolver, mail_from="a@strict.test")
    assert (read.spf.result, read.dkim, read.dmarc.result) == ("fail", (), "fail")


@contextlib.contextmanager
def silent_dns_server() -> Iterator[str]:
    """A UDP port that takes DNS questions and never answers them."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sink:
        sink.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sink.getsockname()[1]}"


async def test_a_dns_server_that_never_answers_gives_temperror_in_time(
    key: mail_dkim.DkimKeyPair,
) -> None:
    signed = mail_dkim.sign(message("good.test"), "good.test", "sel", key.private_key_pem)
    timeout = 1.0
    with silent_dns_server() as address:
        started = time.monotonic()
        field = await authenticate(
            signed,
            peer_ip=CLIENT_IP,
            helo="client.good.test",
            mail_from="a@good.test",
            hostname=US,
            nameserver=parse_nameserver(address),
            timeout=timeout,
        )
        elapsed = time.monotonic() - started
    assert elapsed < timeout + THREAD_GRACE + 0.5, elapsed
    read = trusted_results(field + RECEIVED + signed, US)
    assert read is not None
    assert read.spf.result == "temperror"
    assert [c.result for c in read.dkim] == ["temperror"]
    assert read.dmarc.result == "temperror"


# --- the whole path: SMTP in, REST and GraphQL detail out ---------------------------------


@pytest_asyncio.fixture(scope="module")
async def node(resolver: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    data_dir: Path = tmp_path_factory.mktemp("inbound-auth")
    server = MailcueServer(
        node_settings(data_dir, dns_resolver=resolver, hostname=US, inbound_auth=True)
    )
    await server.start()
    yield server
    await server.stop()


async def test_smtp_mail_shows_its_authentication_in_the_detail(
    node: MailcueServer, key: mail_dkim.DkimKeyPair
) -> None:
    signed = mail_dkim.sign(message("good.test", "wired"), "good.test", "sel", key.private_key_pem)
    recipient = "auth-check@mailcue.test"
    await aiosmtplib.send(
        signed,
        sender="bounces@good.test",
        recipients=[recipient],
        hostname="127.0.0.1",
        port=node.port("smtp"),
        start_tls=False,
    )
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
        boss = await admin(http)
        params = {"mailbox": recipient}
        listing = (await http.get("/api/v1/emails", headers=boss.headers, params=params)).json()
        uid = listing["emails"][0]["uid"]
        raw = await http.get(f"/api/v1/emails/{uid}/raw", headers=boss.headers, params=params)
        assert raw.content.startswith(
            b"Return-Path: <bounces@good.test>\r\nAuthentication-Results: mx.mailcue.test;"
        )
        assert raw.content.endswith(signed)  # then our Received, then exactly the DATA bytes
        detail = await http.get(f"/api/v1/emails/{uid}", headers=boss.headers, params=params)
        found = detail.json()["authentication"]
        assert (found["spf"], found["dkim"], found["dmarc"]) == ("pass", "pass", "pass")
        assert (found["dkim_domain"], found["dmarc_policy"]) == ("good.test", "reject")
        document = (
            "query($uid: String!, $mailbox: String) { email(uid: $uid, mailbox: $mailbox) "
            "{ authentication { spf dkim dmarc dmarcDomain signatures { result selector } } } }"
        )
        answer = await http.post(
            "/graphql",
            headers=boss.headers,
            json={"query": document, "variables": {"uid": uid, "mailbox": recipient}},
        )
        shown = answer.json()["data"]["email"]["authentication"]
        assert shown["dmarcDomain"] == "good.test"
        assert shown["signatures"] == [{"result": "pass", "selector": "sel"}]


async def test_mail_without_our_checks_has_no_authentication(node: MailcueServer) -> None:
    """Until (or unless) the checks run, the detail says nothing: forged claims aren't shown."""
    forged = b"Authentication-Results: mx.mailcue.test; spf=pass smtp.mailfrom=good.test\r\n"
    recipient = "no-checks@mailcue.test"
    async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
        boss = await admin(http)
        await asyncio.wait_for(
            aiosmtplib.send(
                forged + message("bare.test", "unchecked"),
                sender="a@bare.test",
                recipients=[recipient],
                hostname="127.0.0.1",
                port=node.port("smtp"),
                start_tls=False,
            ),
            10,
        )
        params = {"mailbox": recipient}
        listing = (await http.get("/api/v1/emails", headers=boss.headers, params=params)).json()
        uid = listing["emails"][0]["uid"]
        detail = await http.get(f"/api/v1/emails/{uid}", headers=boss.headers, params=params)
        found = detail.json()["authentication"]
        assert found is None or found["spf"] == "none"
