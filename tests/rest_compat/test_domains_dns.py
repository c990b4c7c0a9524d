"""Live DNS checks and DKIM against a real DNS server (dnsmasq) holding the published records.

A first server creates the domains (their DKIM keys are only known then);
dnsmasq is started with records written from the answers, some right, some
wrong, some missing; the same data directory is then served again by a node
whose ``MAILCUE_DNS_RESOLVER`` is that dnsmasq.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import dkim
import dns.resolver
import httpx
import pytest
import pytest_asyncio
from mailcue import AsyncMailcue

from accounts import admin
from conftest import node_settings
from dns_server import dns_server
from mailcue_server.app import MailcueServer
from mailcue_server.mail import dkim as mail_dkim
from mailcue_server.mail.dkim import DkimKeyType
from mailcue_server.store import domains
from mailcue_server.workers.dns_checks import DnsCheckWorker

MAIL_HOST = "mail.mailcue.test"
OTHER_HOST = "other.test"
DOMAINS = "/api/v1/domains"
# name -> (key type, selector)
CREATED = {
    "good.test": ("rsa", "mail"),
    "ed.test": ("ed25519", "ed2024"),
    "wrong.test": ("rsa", "mail"),
    "missing.test": ("rsa", "mail"),
}
MESSAGE = (
    b"From: Alice <alice@{domain}>\r\n"
    b"To: bob@elsewhere.test\r\n"
    b"Subject: signed\r\n"
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"Message-ID: <1@{domain}>\r\n"
    b"\r\n"
    b"Hello.\r\n"
)


@dataclass
class World:
    node: MailcueServer
    resolver: str
    details: dict[str, dict[str, Any]]


def expected(detail: dict[str, Any], record_type: str, prefix: str) -> str:
    for record in detail["dns_records"]:
        if record["record_type"] == record_type and record["hostname"].startswith(prefix):
            return str(record["expected_value"])
    raise AssertionError(f"no {record_type} {prefix} record")


def chunks(text: str) -> list[str]:
    """A long TXT value as character-strings of at most 255 bytes (STACK-NOTES)."""
    return [text[i : i + 255] for i in range(0, len(text), 255)]


def zone(details: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Correct records for good.test and ed.test, wrong ones for wrong.test, none for missing."""
    txt: dict[str, list[str]] = {}
    mx: list[tuple[str, str, int]] = []
    cnames: dict[str, str] = {}
    for name in ("good.test", "ed.test"):
        detail = details[name]
        mx.append((name, MAIL_HOST, 10))
        txt[name] = [expected(detail, "TXT", name)]
        selector = detail["dkim_selector"]
        txt[f"{selector}._domainkey.{name}"] = chunks(expected(detail, "TXT", f"{selector}."))
        for prefix in ("_dmarc.", "_mta-sts.", "_smtp._tls."):
            txt[f"{prefix}{name}"] = [expected(detail, "TXT", prefix)]
        cnames[f"mta-sts.{name}"] = MAIL_HOST
    other_key = mail_dkim.generate_key(DkimKeyType.RSA)
    mx.append(("wrong.test", OTHER_HOST, 10))
    txt["wrong.test"] = ["v=spf1 +all"]
    txt["mail._domainkey.wrong.test"] = chunks(
        mail_dkim.txt_record(other_key.key_type, other_key.public_key)
    )
    txt["_dmarc.wrong.test"] = ["v=DMARC1; p=bogus"]
    txt["_mta-sts.wrong.test"] = ["v=STSv1; id=20190101000000"]
    txt["_smtp._tls.wrong.test"] = ["v=TLSRPTv1"]
    cnames["mta-sts.wrong.test"] = OTHER_HOST
    return {
        "mx": mx,
        "txt": txt,
        "cnames": cnames,
        "hosts": {MAIL_HOST: ["127.0.0.1"], OTHER_HOST: ["127.0.0.2"]},
    }


@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    data_dir = tmp_path_factory.mktemp("domains-dns")
    options: dict[str, Any] = {"hostname": MAIL_HOST, "dns_check_interval": 0}
    first = MailcueServer(node_settings(data_dir, **options))
    await first.start()
    details: dict[str, dict[str, Any]] = {}
    try:
        async with httpx.AsyncClient(base_url=first.http_url, timeout=10) as http:
            boss = await admin(http)
            for name, (key_type, selector) in CREATED.items():
                body = {"name": name, "dkim_key_type": key_type, "dkim_selector": selector}
                response = await http.post(DOMAINS, headers=boss.headers, json=body)
                assert response.status_code == 201, response.text
                details[name] = response.json()
    finally:
        await first.stop()
    async with dns_server(**zone(details)) as resolver:
        node = MailcueServer(node_settings(data_dir, dns_resolver=resolver, **options))
        await node.start()
        try:
            yield World(node, resolver, details)
        finally:
            await node.stop()


@pytest_asyncio.fixture
async def client(world: World) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=world.node.http_url, timeout=30) as http:
        http.headers.update((await admin(http)).headers)
        yield http


async def verify(client: httpx.AsyncClient, name: str) -> dict[str, Any]:
    response = await client.post(f"{DOMAINS}/{name}/verify-dns")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_host(check: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["record_type"], r["hostname"]): r for r in check["dns_records"]}


@pytest.mark.parametrize("name", ["good.test", "ed.test"])
async def test_published_records_verify(client: httpx.AsyncClient, name: str) -> None:
    check = await verify(client, name)
    assert check["all_verified"] is True, check
    for flag in ("mx", "spf", "dkim", "dmarc", "mta_sts", "tls_rpt"):
        assert check[f"{flag}_verified"] is True, flag
    for record in check["dns_records"]:
        assert record["verified"] is True, record
        assert record["current_value"] and record["last_checked_at"] and record["status_detail"]
        assert record["drift"] is False
    records = by_host(check)
    assert records[("MX", name)]["current_value"] == f"10 {MAIL_HOST}"
    assert records[("CNAME", f"mta-sts.{name}")]["current_value"] == MAIL_HOST

    # The result is stored: the domain shows it without asking DNS again.
    detail = (await client.get(f"{DOMAINS}/{name}")).json()
    assert detail["all_verified"] is True and detail["last_dns_check"] == check["checked_at"]
    assert [r["verified"] for r in detail["dns_records"]] == [True] * 7
    listed = (await client.get(DOMAINS)).json()["domains"]
    assert next(d for d in listed if d["name"] == name)["dkim_verified"] is True


async def test_wrong_records_fail_with_the_reason(client: httpx.AsyncClient) -> None:
    check = await verify(client, "wrong.test")
    assert check["all_verified"] is False
    assert not any(check[f"{flag}_verified"] for flag in ("mx", "spf", "dkim", "dmarc"))
    assert check["mta_sts_verified"] is False and check["tls_rpt_verified"] is False
    records = by_host(check)
    reasons = {
        ("MX", "wrong.test"): f"MX does not point to {MAIL_HOST}",
        ("TXT", "wrong.test"): "'+all' lets any server send as the domain",
        ("TXT", "mail._domainkey.wrong.test"): "The published key differs",
        ("TXT", "_dmarc.wrong.test"): "The DMARC record needs p=none",
        ("TXT", "_mta-sts.wrong.test"): "Published policy id '20190101000000' is not",
        ("CNAME", "mta-sts.wrong.test"): "mta-sts.wrong.test points elsewhere",
        ("TXT", "_smtp._tls.wrong.test"): "The TLS-RPT record needs a rua=",
    }
    for key, reason in reasons.items():
        assert records[key]["verified"] is False, key
        assert records[key]["status_detail"].startswith(reason), records[key]
        assert records[key]["current_value"], key
    assert records[("MX", "wrong.test")]["current_value"] == f"10 {OTHER_HOST}"


async def test_missing_records_fail_with_the_reason(client: httpx.AsyncClient) -> None:
    check = await verify(client, "missing.test")
    assert check["all_verified"] is False
    for record in check["dns_records"]:
        assert record["verified"] is False and record["current_value"] is None, record
        assert "does not exist" in record["status_detail"], record
    assert by_host(check)[("MX", "missing.test")]["status_detail"] == (
        "No MX record at missing.test (missing.test does not exist)"
    )


async def test_a_policy_change_shows_until_dns_follows(client: httpx.AsyncClient) -> None:
    """Changing the MTA-STS policy changes its id: the published TXT is then stale."""
    await verify(client, "ed.test")
    patched = await client.patch(f"{DOMAINS}/ed.test", json={"mta_sts_mode": "enforce"})
    detail = patched.json()
    sts = next(r for r in detail["dns_records"] if r["hostname"] == "_mta-sts.ed.test")
    assert sts["verified"] is False and "changed since the last check" in sts["status_detail"]
    assert detail["mta_sts_verified"] is False and detail["all_verified"] is True
    check = await verify(client, "ed.test")
    sts = by_host(check)[("TXT", "_mta-sts.ed.test")]
    assert sts["verified"] is False and "is not the current one" in sts["status_detail"]
    assert sts["drift"] is True and sts["last_verified_at"] is not None
    restored = await client.patch(f"{DOMAINS}/ed.test", json={"mta_sts_mode": "testing"})
    assert restored.status_code == 200
    assert (await verify(client, "ed.test"))["mta_sts_verified"] is True


def dnsmasq_txt(resolver_address: str):  # type: ignore[no-untyped-def]
    """A blocking TXT lookup against dnsmasq, as dkimpy expects its dnsfunc."""
    host, _, port = resolver_address.partition(":")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(port)

    def lookup(name: str) -> str | None:
        try:
            answer = resolver.resolve(name.rstrip("."), "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return None
        return "".join(b"".join(r.strings).decode() for r in answer)

    return lookup


@pytest.mark.parametrize("name", ["good.test", "ed.test"])
async def test_dkim_signature_verifies_against_the_published_key(world: World, name: str) -> None:
    secret = world.node.services.secret_key  # type: ignore[union-attr]
    key = await domains.signing_key(name, secret)
    assert key is not None and key.selector == CREATED[name][1]
    message = MESSAGE.replace(b"{domain}", name.encode())
    signed = mail_dkim.sign(message, key.domain, key.selector, key.private_key_pem)
    lookup = dnsmasq_txt(world.resolver)

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        found = lookup(name.decode())
        return found.encode() if found else None

    def dkimpy_verify(raw: bytes) -> bool:
        return bool(dkim.verify(raw, dnsfunc=dnsfunc))

    assert await asyncio.to_thread(dkimpy_verify, signed)
    tampered = signed.replace(b"Hello.", b"Hello!")
    assert not await asyncio.to_thread(dkimpy_verify, tampered)
    verdict = await asyncio.to_thread(mail_dkim.verify, signed, lookup)
    assert verdict.passed and verdict.domain == name
    # wrong.test publishes someone else's key: its signatures fail.
    wrong = await domains.signing_key("wrong.test", secret)
    assert wrong is not None
    signed_wrong = mail_dkim.sign(message, wrong.domain, wrong.selector, wrong.private_key_pem)
    failed = await asyncio.to_thread(mail_dkim.verify, signed_wrong, lookup)
    assert failed.result is mail_dkim.DkimResult.FAIL


async def test_the_worker_rechecks_due_domains(world: World, client: httpx.AsyncClient) -> None:
    later = datetime.now(UTC) + timedelta(days=1)
    worker = DnsCheckWorker(world.node.settings, interval=3600, clock=lambda: later)
    assert await worker.run_once() == len(CREATED)
    for name in CREATED:
        detail = (await client.get(f"{DOMAINS}/{name}")).json()
        assert datetime.fromisoformat(detail["last_dns_check"]) == later
    assert (await client.get(f"{DOMAINS}/good.test")).json()["all_verified"] is True
    assert (await client.get(f"{DOMAINS}/missing.test")).json()["all_verified"] is False
    # Nothing is due again until the interval has passed.
    assert await worker.run_once() == 0


async def test_the_worker_runs_on_its_own(world: World) -> None:
    """Started, it polls by itself; stopped, it ends cleanly."""
    later = datetime.now(UTC) + timedelta(days=2)
    worker = DnsCheckWorker(world.node.settings, interval=0.05, clock=lambda: later)
    worker.start()
    try:
        for _ in range(200):
            found = await domains.find_domain("missing.test")
            if found is not None and found.last_dns_check == later:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the worker did not check missing.test")
    finally:
        await worker.stop()


async def test_official_sdk_verify(world: World, client: httpx.AsyncClient) -> None:
    scopes = ["domain:read", "domain:write"]
    made = await client.post("/api/v1/auth/api-keys", json={"name": "sdk", "scopes": scopes})
    async with AsyncMailcue(
        api_key=made.json()["key"], base_url=world.node.http_url, max_retries=0
    ) as sdk:
        check = await sdk.domains.verify_dns("good.test")
        assert check.all_verified and check.dkim_verified and check.mta_sts_verified
        assert all(record.verified for record in check.dns_records)
