"""/system routes over REST, GraphQL and the SDK, checked against real TLS clients.

What a mail client sees is read from the wire: the leaf a fresh TLS handshake
with each listener (implicit TLS and STARTTLS) received, fingerprinted here
from its DER, never taken from the code under test. The certificates uploaded
are made by this module with ``cryptography``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import imaplib
import poplib
import smtplib
import ssl
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from mailcue import AsyncMailcue

from accounts import Account, admin, graphql, login, new_api_key, new_user
from certs import (
    DAY,
    ISSUING_CA,
    NOW,
    ROOT_CA,
    Chain,
    fingerprint,
    issue,
    key_pem,
    make_chain,
    new_key,
    pem,
    sha256,
)
from conftest import ADMIN_USER, node_settings
from mailcue_server.app import MailcueServer
from mailcue_server.config import DEFAULT_ADMIN_PASSWORD

SYSTEM = "/api/v1/system"
# The node's own names: the production status wants its hostname in the certificate.
HOSTS = ("localhost", "mail.mailcue.local")
TIMEOUT = 10
IMPLICIT = ("smtps", "imaps", "pop3s")
STARTTLS = ("smtp", "submission", "imap", "pop3")


# --- certificates made by the test ---------------------------------------------------


def text(*certs: x509.Certificate) -> str:
    return pem(*certs).decode()


def upload_body(chain: Chain) -> dict[str, Any]:
    """The upload: the chain without its root, the root as ``ca_certificate``."""
    return {
        "certificate": text(chain.leaf, chain.issuing),
        "private_key": key_pem(chain.leaf_key).decode(),
        "ca_certificate": text(chain.root),
    }


# --- what real clients receive --------------------------------------------------------


def trusting(ca_pem: str) -> ssl.SSLContext:
    return ssl.create_default_context(cadata=ca_pem)


async def implicit_tls_peer(port: int, context: ssl.SSLContext) -> str:
    """Fingerprint of the leaf an implicit-TLS listener presents to a new connection."""
    _, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname="localhost"),
        TIMEOUT,
    )
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return sha256(der)


def _smtp_starttls(port: int, context: ssl.SSLContext) -> bytes:
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
        client.starttls(context=context)
        der: bytes = client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
        return der


def _imap_starttls(port: int, context: ssl.SSLContext) -> bytes:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    try:
        client.starttls(ssl_context=context)
        der: bytes = client.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        return der
    finally:
        client.logout()


def _pop3_stls(port: int, context: ssl.SSLContext) -> bytes:
    client = poplib.POP3("127.0.0.1", port, timeout=TIMEOUT)
    try:
        client.stls(context=context)
        der: bytes = client.sock.getpeercert(binary_form=True)  # type: ignore[attr-defined]
        return der
    finally:
        client.quit()


_UPGRADES: dict[str, Callable[[int, ssl.SSLContext], bytes]] = {
    "smtp": _smtp_starttls,
    "submission": _smtp_starttls,
    "imap": _imap_starttls,
    "pop3": _pop3_stls,
}


async def starttls_peer(name: str, port: int, context: ssl.SSLContext) -> str:
    """Fingerprint of the leaf a STARTTLS/STLS upgrade presents (stdlib client, by IP)."""
    # In a thread: the server runs on this event loop and must keep serving.
    der = await asyncio.to_thread(_UPGRADES[name], port, context)
    return sha256(der)


async def every_listener(server: MailcueServer, context: ssl.SSLContext) -> dict[str, str]:
    seen = {name: await implicit_tls_peer(server.port(name), context) for name in IMPLICIT}
    for name in STARTTLS:
        seen[name] = await starttls_peer(name, server.port(name), context)
    return seen


# --- fixtures and helpers -------------------------------------------------------------


@pytest_asyncio.fixture(scope="module")
async def boss(server: MailcueServer) -> Account:
    """One admin login for the module (each login is an Argon2 check)."""
    async with httpx.AsyncClient(base_url=server.http_url, timeout=TIMEOUT) as http:
        return await admin(http)


@pytest_asyncio.fixture
async def local_tls(http: httpx.AsyncClient, boss: Account) -> AsyncIterator[None]:
    """Start and end the test on the local certificate (the module shares one server)."""
    await http.delete(f"{SYSTEM}/tls", headers=boss.headers)
    yield
    await http.delete(f"{SYSTEM}/tls", headers=boss.headers)


async def upload(http: httpx.AsyncClient, boss: Account, body: dict[str, Any]) -> httpx.Response:
    return await http.put(f"{SYSTEM}/tls", headers=boss.headers, json=body)


async def current(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get(f"{SYSTEM}/certificate")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- the certificate, public -----------------------------------------------------------


async def test_certificate_is_what_every_listener_presents(
    http: httpx.AsyncClient, server: MailcueServer, local_tls: None
) -> None:
    info = await current(http)
    download = await http.get(f"{SYSTEM}/certificate/download")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/x-pem-file"
    assert 'filename="mailcue-ca.pem"' in download.headers["content-disposition"]

    # Verification against the downloaded CA succeeds on every listener ...
    seen = await every_listener(server, trusting(download.text))
    assert set(seen.values()) == {info["fingerprint_sha256"]}, seen
    # ... and fails without it: the local CA is nobody else's.
    with pytest.raises(ssl.SSLCertVerificationError):
        await implicit_tls_peer(server.port("smtps"), ssl.create_default_context())

    assert info["configured"] is False and info["uploaded_at"] is None
    host = server.settings.effective_hostname
    assert info["common_name"] == host and set(info["san_dns_names"]) == {host, "localhost"}
    assert set(info["san_ip_addresses"]) == {"127.0.0.1", "::1"}
    assert info["is_valid"] is True and info["days_remaining"] > 300
    not_before = dt.datetime.fromisoformat(info["not_before"])
    assert not_before < dt.datetime.now(dt.UTC) < dt.datetime.fromisoformat(info["not_after"])
    ca = x509.load_pem_x509_certificate(download.content)
    assert info["issuer"] == ca.subject.rfc4514_string() == info["ca"]["subject"]
    assert info["ca"]["is_local"] is True
    assert info["ca"]["fingerprint_sha256"] == fingerprint(ca)


async def test_public_routes_need_no_credentials_and_ignore_bad_ones(
    http: httpx.AsyncClient,
) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"X-API-Key": "mc_nonsense"}):
        for path in ("/certificate", "/certificate/download"):
            response = await http.get(f"{SYSTEM}{path}", headers=headers)
            assert response.status_code == 200, (path, headers, response.text)


async def test_mail_listeners_name_the_ports_this_node_listens_on(
    http: httpx.AsyncClient, server: MailcueServer
) -> None:
    # No credentials, as the Connect panel asks before anything else.
    answer = await http.post(
        "/graphql", json={"query": "{ mailListeners { name port tls } }"}, headers={}
    )
    assert answer.status_code == 200, answer.text
    listed = {
        item["name"]: (item["port"], item["tls"])
        for item in answer.json()["data"]["mailListeners"]
    }
    tls = {
        "smtp": "STARTTLS",
        "submission": "STARTTLS",
        "smtps": "IMPLICIT",
        "imap": "STARTTLS",
        "imaps": "IMPLICIT",
        "pop3": "STARTTLS",
        "pop3s": "IMPLICIT",
    }
    assert listed == {name: (server.port(name), mode) for name, mode in tls.items()}
    assert all(port != 0 for port, _ in listed.values())  # the bound ports, not the settings'


# --- TLS upload --------------------------------------------------------------------------


async def test_upload_switches_every_listener_without_restart(
    http: httpx.AsyncClient, server: MailcueServer, boss: Account, local_tls: None
) -> None:
    local = await current(http)
    local_ca = (await http.get(f"{SYSTEM}/certificate/download")).text
    chain = make_chain(HOSTS)

    response = await upload(http, boss, upload_body(chain))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["configured"] is True and body["fingerprint_sha256"] == chain.sha256
    assert body["common_name"] == "localhost" and body["uploaded_at"] is not None
    assert body["issuer"] == f"CN={ISSUING_CA}" and body["ca"]["subject"] == f"CN={ROOT_CA}"
    assert await current(http) == body
    status = (await http.get(f"{SYSTEM}/tls", headers=boss.headers)).json()
    assert status == body
    # The CA to trust is now the uploaded root: new connections verify with it.
    download = await http.get(f"{SYSTEM}/certificate/download")
    assert download.text == text(chain.root)
    seen = await every_listener(server, trusting(download.text))
    assert set(seen.values()) == {chain.sha256}, seen
    with pytest.raises(ssl.SSLCertVerificationError):
        await implicit_tls_peer(server.port("imaps"), trusting(local_ca))

    # Back to the local certificate, again without a restart.
    removed = await http.delete(f"{SYSTEM}/tls", headers=boss.headers)
    assert removed.status_code == 200, removed.text
    assert removed.json()["fingerprint_sha256"] == local["fingerprint_sha256"]
    assert removed.json()["configured"] is False
    seen = await every_listener(server, trusting(local_ca))
    assert set(seen.values()) == {local["fingerprint_sha256"]}
    assert (await http.get(f"{SYSTEM}/tls", headers=boss.headers)).json() == {
        "configured": False,
        "common_name": None,
        "san_dns_names": [],
        "not_before": None,
        "not_after": None,
        "fingerprint_sha256": None,
        "uploaded_at": None,
        "subject": None,
        "issuer": None,
        "san_ip_addresses": [],
        "is_valid": False,
        "days_remaining": None,
        "ca": None,
    }
    again = await http.delete(f"{SYSTEM}/tls", headers=boss.headers)
    assert again.status_code == 404


async def test_a_whole_chain_in_certificate_is_accepted(
    http: httpx.AsyncClient, boss: Account, local_tls: None
) -> None:
    chain = make_chain(HOSTS)
    body = upload_body(chain)
    # The root pasted twice (end of the chain and as ca_certificate) is kept once.
    body["certificate"] = text(chain.leaf, chain.issuing, chain.root)
    response = await upload(http, boss, body)
    assert response.status_code == 200, response.text
    assert (await http.get(f"{SYSTEM}/certificate/download")).text == text(chain.root)


def _mismatched_key() -> dict[str, Any]:
    return {**upload_body(make_chain(HOSTS)), "private_key": key_pem(new_key()).decode()}


def _expired() -> dict[str, Any]:
    return upload_body(make_chain(HOSTS, not_before=NOW - 90 * DAY, not_after=NOW - DAY))


def _not_yet_valid() -> dict[str, Any]:
    return upload_body(make_chain(HOSTS, not_before=NOW + DAY, not_after=NOW + 90 * DAY))


def _unlinked() -> dict[str, Any]:
    chain = make_chain(HOSTS)
    stranger = issue("Other CA", new_key(), ca=True)
    return {
        **upload_body(chain),
        "certificate": text(chain.leaf, stranger),
        "ca_certificate": None,
    }


def _wrong_root() -> dict[str, Any]:
    return {**upload_body(make_chain(HOSTS)), "ca_certificate": text(make_chain(HOSTS).root)}


def _leaf_as_issuer() -> dict[str, Any]:
    chain = make_chain(HOSTS)
    return {**upload_body(chain), "certificate": text(chain.leaf, make_chain(HOSTS).leaf)}


def _expired_issuer() -> dict[str, Any]:
    chain = make_chain(HOSTS)
    old = issue(
        ISSUING_CA,
        chain.issuing_key,
        ROOT_CA,
        new_key(),
        ca=True,
        not_after=NOW - DAY,
        not_before=NOW - 9 * DAY,
    )
    return {**upload_body(chain), "certificate": text(chain.leaf, old), "ca_certificate": None}


def _garbage_certificate() -> dict[str, Any]:
    return {**upload_body(make_chain(HOSTS)), "certificate": "hello", "ca_certificate": None}


def _garbage_key() -> dict[str, Any]:
    return {**upload_body(make_chain(HOSTS)), "private_key": "-----BEGIN PRIVATE KEY-----\nAA==\n"}


def _non_ascii() -> dict[str, Any]:
    return {**upload_body(make_chain(HOSTS)), "certificate": "-----BEGIN CERTIFICATE----- é"}


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (_mismatched_key, "private key does not match the certificate"),
        (_expired, "the certificate has expired"),
        (_not_yet_valid, "the certificate is not yet valid"),
        (_unlinked, f"chain is broken: certificate 1 was issued by 'CN={ISSUING_CA}', but"),
        (_wrong_root, "chain is broken: the signature on certificate 2 does not verify"),
        (_leaf_as_issuer, "certificate 2 ('CN=localhost') is not a CA certificate"),
        (_expired_issuer, "certificate 2 of the chain has expired"),
        (_garbage_certificate, "certificate chain is not valid PEM"),
        (_garbage_key, "private key is not valid PEM"),
        (_non_ascii, "certificate is not PEM: it contains non-ASCII characters"),
    ],
    ids=lambda v: getattr(v, "__name__", "").strip("_") or None,
)
async def test_bad_upload_is_400_and_changes_nothing(
    http: httpx.AsyncClient,
    server: MailcueServer,
    boss: Account,
    local_tls: None,
    make: Callable[[], dict[str, Any]],
    reason: str,
) -> None:
    before = await current(http)
    response = await upload(http, boss, make())
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]
    assert await current(http) == before
    ca = (await http.get(f"{SYSTEM}/certificate/download")).text
    assert (
        await implicit_tls_peer(server.port("pop3s"), trusting(ca))
        == (before["fingerprint_sha256"])
    )


@pytest.mark.parametrize(
    "body",
    [
        {"certificate": 5, "private_key": "x"},
        {"certificate": "x"},
        {"certificate": ["x"], "private_key": "x"},
        {"certificate": "x", "private_key": "x", "ca_certificate": 1},
    ],
)
async def test_wrongly_typed_upload_is_422(
    http: httpx.AsyncClient, boss: Account, body: dict[str, Any]
) -> None:
    response = await upload(http, boss, body)
    assert response.status_code == 422, response.text
    assert (await http.get(f"{SYSTEM}/tls", headers=boss.headers)).json()["configured"] is False


# --- settings ---------------------------------------------------------------------------


async def test_settings_round_trip(http: httpx.AsyncClient, boss: Account) -> None:
    url = f"{SYSTEM}/settings"
    first = await http.get(url, headers=boss.headers)
    assert first.status_code == 200, first.text
    assert first.json() == {
        "hostname": "mail.mailcue.local",
        "catch_all_enabled": True,
        "domain": "mailcue.local",
        "mode": "test",
        "max_message_size": 25 * 1024 * 1024,
        "retention_max_messages": 0,
        "retention_max_age_days": 0,
        "relay_host": None,
        "relay_port": 587,
        "relay_tls": "starttls",
        "outbound_ca_file": None,
        "relay_username": None,
        "relay_password_set": False,
        "restart_required": [],
    }
    # Only what is given changes; the reference SDK sends hostname + catch_all_enabled.
    changed = await http.put(
        url,
        headers=boss.headers,
        json={"retention_max_messages": 500, "retention_max_age_days": 30, "relay_port": 2525},
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert (body["retention_max_messages"], body["retention_max_age_days"]) == (500, 30)
    # Live fields: nothing waits for a restart (this test node runs no outbound queue).
    assert (body["relay_host"], body["relay_port"]) == (None, 2525)
    assert body["restart_required"] == []
    assert (await http.get(url, headers=boss.headers)).json() == body

    reset = {"retention_max_messages": 0, "retention_max_age_days": 0, "relay_port": 587}
    assert (await http.put(url, headers=boss.headers, json=reset)).json()["restart_required"] == []
    same = await http.put(
        url,
        headers=boss.headers,
        json={"hostname": "MAIL.mailcue.local.", "catch_all_enabled": True},
    )
    assert same.status_code == 200 and same.json()["restart_required"] == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"hostname": "not a host"}, "hostname: Invalid domain name 'not a host'"),
        ({"domain": "localhost"}, "domain: Invalid domain name 'localhost': needs at least"),
        ({"max_message_size": 10}, "max_message_size must be between 1024 and"),
        ({"retention_max_age_days": -1}, "retention_max_age_days must be between 0 and"),
        ({"relay_host": "smtp.example.com:587"}, "relay_host: give the port in relay_port"),
        ({"relay_host": "bad_host!"}, "relay_host: 'bad_host!' is not a host name"),
        ({"relay_port": 70000}, "relay_port must be between 1 and 65535"),
        ({"relay_tls": "ssl"}, "relay_tls must be one of starttls, tls, none, not 'ssl'"),
        ({"outbound_ca_file": "relative/ca.pem"}, "outbound_ca_file: give an absolute path"),
        ({"outbound_ca_file": "/nonexistent/ca.pem"}, "'/nonexistent/ca.pem' is not a file"),
        ({"outbound_ca_file": "/"}, "is not a file"),
        # Text no database can hold is refused at the door, before the path rules.
        ({"outbound_ca_file": "/etc/ca\u0000.pem"}, "NUL character"),
        # One bad field: nothing of the request is saved.
        ({"retention_max_messages": 9, "relay_port": 0}, "relay_port must be between"),
    ],
)
async def test_bad_settings_are_400_and_save_nothing(
    http: httpx.AsyncClient, boss: Account, body: dict[str, Any], reason: str
) -> None:
    url = f"{SYSTEM}/settings"
    before = (await http.get(url, headers=boss.headers)).json()
    response = await http.put(url, headers=boss.headers, json=body)
    assert response.status_code == 400, response.text
    assert reason in response.json()["detail"]
    assert (await http.get(url, headers=boss.headers)).json() == before


@pytest.mark.parametrize(
    "body",
    [
        {"max_message_size": "big"},
        {"catch_all_enabled": "maybe"},
        {"hostname": 5},
        {"relay_tls": 1},
        {"outbound_ca_file": ["/a.pem"]},
        [],
    ],
)
async def test_wrongly_typed_settings_are_422(
    http: httpx.AsyncClient, boss: Account, body: Any
) -> None:
    response = await http.put(f"{SYSTEM}/settings", headers=boss.headers, json=body)
    assert response.status_code == 422, response.text


async def test_settings_persist_across_a_restart(tmp_path: Path) -> None:
    settings = node_settings(tmp_path)
    change = {
        "hostname": "mx.example.test",
        "domain": "example.test",
        "max_message_size": 4096,
        "retention_max_messages": 100,
        "relay_host": "127.0.0.1",
        "relay_port": 2525,
    }
    first = MailcueServer(settings)
    await first.start()
    try:
        async with httpx.AsyncClient(base_url=first.http_url, timeout=TIMEOUT) as http:
            boss = await admin(http)
            saved = await http.put(f"{SYSTEM}/settings", headers=boss.headers, json=change)
            assert saved.status_code == 200, saved.text
            # The size applies at once; a relay in test mode starts the queue at next start.
            waiting = ["hostname", "domain", "relay_host"]
            assert saved.json()["restart_required"] == waiting
    finally:
        await first.stop()

    second = MailcueServer(node_settings(tmp_path))
    await second.start()
    try:
        async with httpx.AsyncClient(base_url=second.http_url, timeout=TIMEOUT) as http:
            boss = await admin(http)
            body = (await http.get(f"{SYSTEM}/settings", headers=boss.headers)).json()
            cert = await current(http)
        assert {name: body[name] for name in change} == change
        assert body["restart_required"] == []
        # Applied: the new name is in the certificate and the SMTP greeting, the size in EHLO.
        assert cert["common_name"] == "mx.example.test"
        assert "mx.example.test" in cert["san_dns_names"]
        ehlo = await asyncio.to_thread(_ehlo, second.port("smtp"))
        assert ehlo.startswith("mx.example.test") and "SIZE 4096" in ehlo
    finally:
        await second.stop()


def _ehlo(port: int) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
        code, text = client.ehlo("client.test")
        assert code == 250
        return text.decode()


# --- production status ------------------------------------------------------------------


@pytest_asyncio.fixture
async def fresh_node(tmp_path: Path) -> AsyncIterator[MailcueServer]:
    """A node as first started: the documented default admin password."""
    node = MailcueServer(node_settings(tmp_path, admin_password=DEFAULT_ADMIN_PASSWORD))
    await node.start()
    yield node
    await node.stop()


def checks_of(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["key"]: check for check in status["checks"]}


async def relay_listener() -> asyncio.Server:
    async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    return await asyncio.start_server(greet, "127.0.0.1", 0)


async def test_production_status_on_a_test_node_and_after_fixes(
    fresh_node: MailcueServer,
) -> None:
    async with httpx.AsyncClient(base_url=fresh_node.http_url, timeout=TIMEOUT) as http:
        boss = await login(http, ADMIN_USER, DEFAULT_ADMIN_PASSWORD)
        url = f"{SYSTEM}/production-status"
        response = await http.get(url, headers=boss.headers)
        assert response.status_code == 200, response.text
        status = response.json()
        assert status["mode"] == "test" and status["ready"] is False
        assert (status["tls_configured"], status["domains_configured"]) == (False, 0)
        assert status["features"] == {"inject": True, "messaging_sandbox": False, "httpbin": False}
        checks = checks_of(status)
        expected = {
            "mode": ("fail", "MAILCUE_MODE=production"),
            "admin_password": ("fail", "Admin account(s) admin still use the default password"),
            "secret_key": ("fail", "production needs MAILCUE_SECRET_KEY of at least 32"),
            "admin_2fa": ("fail", "Admin account(s) admin have no TOTP"),
            "tls_trusted": ("fail", "upload a certificate for mail.mailcue.local"),
            "tls_valid": ("pass", "Covers mail.mailcue.local"),
            "domains": ("fail", "POST /domains"),
            "dkim_keys": ("skipped", "No active managed domain"),
            "database": ("warning", "MAILCUE_DATABASE_URL=postgres://"),
            "event_bus": ("warning", "MAILCUE_REDIS_URL"),
            "outbound_delivery": ("skipped", "No relay set"),
            "smtp_relay_refused": (
                "fail",
                f"Port {fresh_node.port('smtp')} accepted RCPT TO:<relay-check@"
                "mailcue-readiness.invalid> from a stranger (250",
            ),
            "imap_pop3_tls_required": (
                "fail",
                f"IMAP on port {fresh_node.port('imap')} and POP3 on port "
                f"{fresh_node.port('pop3')} take a password before STARTTLS",
            ),
        }
        assert set(checks) == set(expected)
        # The reference contract's two fields carry our checks' verdicts.
        assert (status["smtp_relay_refused"], status["postfix_strict_mode"]) == (False, False)
        assert (status["imap_pop3_tls_required"], status["dovecot_tls_required"]) == (False, False)
        for key, (state, hint) in expected.items():
            assert checks[key]["status"] == state, checks[key]
            assert checks[key]["passed"] is (state == "pass")
            assert hint in checks[key]["hint"], checks[key]
            assert checks[key]["label"]

        # Fix some: new admin password, a trusted certificate, a domain, a reachable relay.
        changed = await http.put(
            "/api/v1/auth/password",
            headers=boss.headers,
            json={"current_password": DEFAULT_ADMIN_PASSWORD, "new_password": "a-better-one-9"},
        )
        assert changed.status_code == 200, changed.text
        boss = await login(http, ADMIN_USER, "a-better-one-9")
        assert (await upload(http, boss, upload_body(make_chain(HOSTS)))).status_code == 200
        domain = await http.post("/api/v1/domains", headers=boss.headers, json={"name": "ok.test"})
        assert domain.status_code == 201, domain.text
        relay = await relay_listener()
        relay_port = relay.sockets[0].getsockname()[1]
        try:
            await http.put(
                f"{SYSTEM}/settings",
                headers=boss.headers,
                json={"relay_host": "127.0.0.1", "relay_port": relay_port},
            )
            status = (await http.get(url, headers=boss.headers)).json()
        finally:
            relay.close()
            await relay.wait_closed()
        checks = checks_of(status)
        assert status["tls_configured"] is True and status["domains_configured"] == 1
        for key in ("admin_password", "tls_trusted", "tls_valid", "dkim_keys"):
            assert checks[key]["status"] == "pass", checks[key]
        assert checks["tls_trusted"]["hint"] == f"Issued by CN={ISSUING_CA}"
        assert checks["outbound_delivery"] == {
            "key": "outbound_delivery",
            "label": "Relay or MX delivery reachable",
            "status": "pass",
            "passed": True,
            "hint": f"The relay 127.0.0.1:{relay_port} (saved; this node starts its outbound "
            "queue at the next restart) accepts connections",
        }
        assert "domains" not in checks
        dns = checks["domain_dns:ok.test"]
        assert dns["status"] == "fail" and "POST /domains/ok.test/verify-dns" in dns["hint"]
        assert "MX ok.test" in dns["hint"]

        # The relay gone: the same check fails and says why.
        status = (await http.get(url, headers=boss.headers)).json()
        delivery = checks_of(status)["outbound_delivery"]
        assert delivery["status"] == "fail"
        assert delivery["hint"].startswith(f"Cannot connect to the relay 127.0.0.1:{relay_port}")

        # A certificate that does not name this server's host is not "valid" for it.
        other = make_chain(("other.example",))
        assert (await upload(http, boss, upload_body(other))).status_code == 200
        tls_valid = checks_of((await http.get(url, headers=boss.headers)).json())["tls_valid"]
        assert tls_valid["status"] == "fail"
        assert "does not name mail.mailcue.local" in tls_valid["hint"]


async def test_production_status_on_a_production_node_probes_its_own_listeners(
    tmp_path: Path,
) -> None:
    node = MailcueServer(
        node_settings(
            tmp_path, mode="production", admin_password="prod-admin-9", secret_key="p" * 48
        )
    )
    await node.start()
    try:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=TIMEOUT) as http:
            boss = await login(http, ADMIN_USER, "prod-admin-9")
            response = await http.get(f"{SYSTEM}/production-status", headers=boss.headers)
            assert response.status_code == 200, response.text
            status = response.json()
            graphql_status = await graphql(
                http,
                boss,
                "{ productionStatus { smtpRelayRefused imapPop3TlsRequired postfixStrictMode "
                "dovecotTlsRequired } }",
            )
    finally:
        await node.stop()
    checks = checks_of(status)
    relay = checks["smtp_relay_refused"]
    assert relay["status"] == "pass", relay
    assert relay["hint"].startswith(f"Port {node.port('smtp')} refused RCPT TO:<")
    assert "550 5.7.1" in relay["hint"]
    tls_first = checks["imap_pop3_tls_required"]
    assert tls_first["status"] == "pass", tls_first
    assert "LOGINDISABLED" in tls_first["hint"]
    assert status["smtp_relay_refused"] is status["postfix_strict_mode"] is True
    assert status["imap_pop3_tls_required"] is status["dovecot_tls_required"] is True
    assert graphql_status["data"]["productionStatus"] == {
        "smtpRelayRefused": True,
        "imapPop3TlsRequired": True,
        "postfixStrictMode": True,
        "dovecotTlsRequired": True,
    }


# --- access -----------------------------------------------------------------------------

ADMIN_ROUTES = [
    ("GET", "/settings", None),
    ("PUT", "/settings", {"retention_max_messages": 0}),
    ("GET", "/tls", None),
    ("PUT", "/tls", {"certificate": "x", "private_key": "y"}),
    ("DELETE", "/tls", None),
    ("GET", "/production-status", None),
]


async def _call(
    http: httpx.AsyncClient, method: str, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    return await http.request(method, f"{SYSTEM}{path}", json=body, headers=headers)


async def test_admin_routes_need_an_admin(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    for method, path, body in ADMIN_ROUTES:
        anonymous = await _call(http, method, path, body, {})
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        forbidden = await _call(http, method, path, body, user.headers)
        assert forbidden.status_code == 403, (method, path, forbidden.text)
        assert forbidden.json()["detail"] == "Administrator privileges required"


async def test_api_keys_need_the_system_scopes(http: httpx.AsyncClient, boss: Account) -> None:
    other = (await new_api_key(http, boss, scopes=["email:read"]))["key"]
    reader = (await new_api_key(http, boss, scopes=["system:read"]))["key"]
    for method, path, body in ADMIN_ROUTES:
        response = await _call(http, method, path, body, {"X-API-Key": other})
        assert response.status_code == 403, (method, path, response.text)
        scope = "system:read" if method == "GET" else "system:write"
        assert f"'{scope}'" in response.json()["detail"]
        response = await _call(http, method, path, body, {"X-API-Key": reader})
        assert response.status_code == (200 if method == "GET" else 403), (method, path)


async def test_official_sdk_parses_our_answers(
    http: httpx.AsyncClient, boss: Account, local_tls: None
) -> None:
    key = (await new_api_key(http, boss, scopes=["system:read"]))["key"]
    base_url = str(http.base_url).rstrip("/")
    async with AsyncMailcue(api_key=key, base_url=base_url, max_retries=0) as client:
        info = await client.system.get_certificate()
        assert info.configured is False and info.fingerprint_sha256
        assert info.common_name == "mail.mailcue.local" and "localhost" in info.san_dns_names
        pem_bytes = await client.system.download_certificate()
        assert pem_bytes.startswith(b"-----BEGIN CERTIFICATE-----")
        assert (await client.system.settings())["hostname"] == "mail.mailcue.local"
        assert (await client.system.tls_status()).configured is False
        chain = make_chain(HOSTS)
        assert (await upload(http, boss, upload_body(chain))).status_code == 200
        status = await client.system.tls_status()
        assert status.configured is True and status.fingerprint_sha256 == chain.sha256
        assert status.uploaded_at and status.not_after


# --- GraphQL twins ------------------------------------------------------------------------

GQL_CERTIFICATE = """{ systemCertificate { configured fingerprintSha256 commonName
  sanDnsNames notAfter ca { subject isLocal } } caCertificatePem }"""


async def test_graphql_queries(http: httpx.AsyncClient, boss: Account, local_tls: None) -> None:
    public = (await graphql(http, None, GQL_CERTIFICATE))["data"]
    rest = await current(http)
    assert public["systemCertificate"]["fingerprintSha256"] == rest["fingerprint_sha256"]
    assert public["systemCertificate"]["ca"] == {"subject": rest["ca"]["subject"], "isLocal": True}
    download = (await http.get(f"{SYSTEM}/certificate/download")).text
    assert public["caCertificatePem"] == download

    query = """{ systemSettings { hostname catchAllEnabled maxMessageSize restartRequired }
      tlsStatus { configured }
      productionStatus { ready mode checks { key status passed hint } } }"""
    data = (await graphql(http, boss, query))["data"]
    assert data["systemSettings"]["hostname"] == "mail.mailcue.local"
    assert data["tlsStatus"] == {"configured": False}
    assert data["productionStatus"]["ready"] is False
    mode = next(c for c in data["productionStatus"]["checks"] if c["key"] == "mode")
    assert mode["status"] == "FAIL" and mode["passed"] is False

    hidden = await graphql(http, None, "{ systemSettings { hostname } }")
    assert hidden["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    user = await new_user(http)
    denied = await graphql(http, user, "{ productionStatus { ready } }")
    assert denied["errors"][0]["extensions"]["code"] == "FORBIDDEN"


GQL_UPLOAD = """mutation ($input: UploadTlsCertificateInput!) {
  uploadTlsCertificate(input: $input) {
    __typename
    ... on TlsCertificate { configured fingerprintSha256 }
    ... on OperationError { code message }
  }
}"""
GQL_SETTINGS = """mutation ($input: UpdateServerSettingsInput!) {
  updateSystemSettings(input: $input) {
    __typename
    ... on ServerSettings { retentionMaxAgeDays restartRequired }
    ... on OperationError { code message }
  }
}"""


async def test_graphql_mutations(
    http: httpx.AsyncClient, server: MailcueServer, boss: Account, local_tls: None
) -> None:
    mutation = await graphql(http, boss, '{ __type(name: "Mutation") { fields { name } } }')
    names = {field["name"] for field in mutation["data"]["__type"]["fields"]}
    assert "uploadTlsCertificate" in names, "schema/root.py must merge SystemMutation"
    chain = make_chain(HOSTS)
    variables = {
        "certificate": text(chain.leaf, chain.issuing),
        "privateKey": key_pem(chain.leaf_key).decode(),
        "caCertificate": text(chain.root),
    }
    made = (await graphql(http, boss, GQL_UPLOAD, input=variables))["data"]
    assert made["uploadTlsCertificate"] == {
        "__typename": "TlsCertificate",
        "configured": True,
        "fingerprintSha256": chain.sha256,
    }
    assert await implicit_tls_peer(server.port("smtps"), trusting(text(chain.root))) == (
        chain.sha256
    )
    expired = make_chain(HOSTS, not_before=NOW - 9 * DAY, not_after=NOW - DAY)
    bad = {
        **variables,
        "certificate": text(expired.leaf),
        "privateKey": key_pem(expired.leaf_key).decode(),
    }
    refused = (await graphql(http, boss, GQL_UPLOAD, input=bad))["data"]
    assert refused["uploadTlsCertificate"]["code"] == "INVALID"
    assert "has expired" in refused["uploadTlsCertificate"]["message"]

    remove = """mutation { removeTlsCertificate { __typename
      ... on TlsCertificate { configured } ... on OperationError { code } } }"""
    removed = (await graphql(http, boss, remove))["data"]["removeTlsCertificate"]
    assert removed == {"__typename": "TlsCertificate", "configured": False}
    again = (await graphql(http, boss, remove))["data"]["removeTlsCertificate"]
    assert again == {"__typename": "OperationError", "code": "NOT_FOUND"}

    saved = await graphql(http, boss, GQL_SETTINGS, input={"retentionMaxAgeDays": 7})
    assert saved["data"]["updateSystemSettings"] == {
        "__typename": "ServerSettings",
        "retentionMaxAgeDays": 7,
        "restartRequired": [],
    }
    wrong = await graphql(http, boss, GQL_SETTINGS, input={"maxMessageSize": 1})
    assert wrong["data"]["updateSystemSettings"]["code"] == "INVALID"
    await graphql(http, boss, GQL_SETTINGS, input={"retentionMaxAgeDays": 0})
    user = await new_user(http)
    denied = await graphql(http, user, GQL_SETTINGS, input={"retentionMaxAgeDays": 1})
    assert denied["data"]["updateSystemSettings"]["code"] == "FORBIDDEN"
