"""POST /api/v1/emails/validate (and GraphQL validateEmail) against real DNS and SMTP.

dnsmasq on loopback serves the test domains; an aiosmtpd server on
127.0.0.1 plays every MX and accepts or refuses recipients. 127.0.0.2 has
nothing on the probe port (connection refused) and 127.0.0.3 accepts the
connection but never greets (timeout).
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiosmtpd.smtp import SMTP, Envelope, Session
from disposable_email_domains import blocklist
from mailcue import AsyncMailcue

from accounts import new_api_key, new_user
from conftest import node_settings
from dns_server import DEFAULT_LOCAL_DOMAINS, dns_server
from mailcue_server.app import MailcueServer
from mailcue_server.resolvers.validation import check_address
from mailcue_server.schema.types.validation import ValidationVerdict

TIMEOUT = 2.0  # MAILCUE_VALIDATION_TIMEOUT for this module
DISPOSABLE = "mailinator.com"
VALIDATE = "/api/v1/emails/validate"


@dataclass
class MxHandler:
    """The MX of every test domain: knows a few mailboxes, one catch-all domain."""

    mailboxes: frozenset[str] = frozenset(
        {"alice@ok.test", "bob@aonly.test", f"temp@{DISPOSABLE}"}
    )
    catch_all_domains: frozenset[str] = frozenset({"any.test"})
    helo_names: list[str] = field(default_factory=list)
    senders: list[str] = field(default_factory=list)
    recipients: list[str] = field(default_factory=list)
    data_commands: int = 0

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.helo_names.append(session.host_name or "")
        self.senders.append(address)
        envelope.mail_from = address
        return "250 2.1.0 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        self.recipients.append(address)
        if address == "grey@ok.test":
            return "450 4.2.0 Greylisted, try again later"
        if address == "blocked@ok.test":
            return "550 5.7.1 Client host rejected by policy"
        if address in self.mailboxes or address.rpartition("@")[2] in self.catch_all_domains:
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 OK"
        return "550 5.1.1 No such user here"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.data_commands += 1
        return "554 5.7.0 A validation probe must never send DATA"


@dataclass
class MailHosts:
    handler: MxHandler
    port: int


@pytest_asyncio.fixture(scope="module")
async def mail_hosts() -> AsyncIterator[MailHosts]:
    """The SMTP server on 127.0.0.1 and a mute listener on 127.0.0.3, same port."""
    loop = asyncio.get_running_loop()
    handler = MxHandler()
    smtp = await loop.create_server(lambda: SMTP(handler, hostname="mx.ok.test"), "127.0.0.1", 0)
    port = smtp.sockets[0].getsockname()[1]
    muted: list[asyncio.StreamWriter] = []

    async def never_greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        muted.append(writer)
        await reader.read()  # say nothing until the client gives up

    silent = await asyncio.start_server(never_greet, "127.0.0.3", port)
    yield MailHosts(handler, port)
    for writer in muted:
        writer.close()
    for listener in (smtp, silent):
        listener.close()
        await listener.wait_closed()


@pytest_asyncio.fixture(scope="module")
async def resolver() -> AsyncIterator[str]:
    async with dns_server(
        mx=[
            ("ok.test", "mx.ok.test", 10),
            ("any.test", "mx.ok.test", 10),
            (DISPOSABLE, "mx.ok.test", 10),
            ("refused.test", "mx.refused.test", 10),
            ("silent.test", "mx.silent.test", 10),
            ("nullmx.test", ".", 0),
            ("allnull.test", ".", 0),  # only root targets: a null MX too
            ("allnull.test", ".", 10),
        ],
        hosts={
            "mx.ok.test": ["127.0.0.1"],
            "aonly.test": ["127.0.0.1"],
            "mx.refused.test": ["127.0.0.2"],
            "mx.silent.test": ["127.0.0.3"],
            "allnull.test": ["127.0.0.1"],  # with MX records, no implicit MX
        },
        local=(*DEFAULT_LOCAL_DOMAINS, DISPOSABLE),
    ) as address:
        yield address


@pytest_asyncio.fixture(scope="module")
async def server(
    tmp_path_factory: pytest.TempPathFactory, resolver: str, mail_hosts: MailHosts
) -> AsyncIterator[MailcueServer]:
    """This module's node: DNS from dnsmasq, probes to the test MX's port."""
    settings = node_settings(
        tmp_path_factory.mktemp("validation"),
        dns_resolver=resolver,
        validation_smtp_port=mail_hosts.port,
        validation_timeout=TIMEOUT,
    )
    node = MailcueServer(settings)
    await node.start()
    yield node
    await node.stop()


@pytest_asyncio.fixture(scope="module")
async def headers(server: MailcueServer) -> dict[str, str]:
    async with httpx.AsyncClient(base_url=server.http_url, timeout=10) as client:
        return (await new_user(client)).headers


async def validate(http: httpx.AsyncClient, headers: dict[str, str], email: str) -> dict[str, Any]:
    response = await http.post(VALIDATE, json={"email": email}, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_accepted_recipient_is_deliverable(
    http: httpx.AsyncClient, headers: dict[str, str], mail_hosts: MailHosts
) -> None:
    body = await validate(http, headers, "alice@ok.test")
    assert (body["status"], body["verdict"], body["deliverable"]) == ("valid", "deliverable", True)
    assert body["is_valid"] is True and body["confidence"] > 0.9
    assert body["syntax"] == {
        "is_valid": True,
        "local_part": "alice",
        "domain": "ok.test",
        "error": None,
    }
    dns = body["dns"]
    assert dns["is_valid"] and dns["has_mx"] and dns["status"] == "valid"
    assert dns["mx_records"] == ["10 mx.ok.test."]
    mailbox = body["mailbox"]
    assert mailbox["is_valid"] is True and mailbox["smtp_code"] == 250
    assert mailbox["enhanced_status"] == "2.1.5" and mailbox["mx_host"] == "mx.ok.test."
    assert mailbox["transport"] == "direct" and mailbox["catch_all"] is False
    assert [probe["verdict"] for probe in mailbox["control_probes"]] == ["mailbox_absent"]
    assert body["disposable"] == {
        "is_disposable": False,
        "is_forwarding_alias": False,
        "error": None,
    }
    assert body["catch_all_risk"] is None and body["provider"] is None
    # The probe introduced itself as this server and never sent a message.
    assert mail_hosts.handler.senders[-1] == "postmaster@mail.mailcue.local"
    assert mail_hosts.handler.helo_names[-1] == "mail.mailcue.local"
    assert "alice@ok.test" in mail_hosts.handler.recipients
    assert mail_hosts.handler.data_commands == 0


async def test_refused_recipient_is_undeliverable(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = await validate(http, headers, "carol@ok.test")
    assert (body["status"], body["verdict"], body["deliverable"]) == (
        "invalid",
        "undeliverable",
        False,
    )
    assert body["is_valid"] is False
    mailbox = body["mailbox"]
    assert mailbox["is_valid"] is False and mailbox["smtp_code"] == 550
    assert mailbox["enhanced_status"] == "5.1.1" and mailbox["reason_code"] == "rejected"
    assert mailbox["control_probes"] == []
    assert "No such user" in body["reason"]


async def test_domain_without_mx_falls_back_to_its_address(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    body = await validate(http, headers, "bob@aonly.test")
    assert body["verdict"] == "deliverable"
    dns = body["dns"]
    assert (dns["has_mx"], dns["has_a"], dns["a_records"]) == (False, True, ["127.0.0.1"])
    assert body["mailbox"]["mx_host"] == "aonly.test."


async def test_domain_that_does_not_exist(
    http: httpx.AsyncClient, headers: dict[str, str], mail_hosts: MailHosts
) -> None:
    probed = len(mail_hosts.handler.recipients)
    body = await validate(http, headers, "someone@ghost.test")
    assert (body["status"], body["verdict"], body["is_valid"]) == (
        "invalid",
        "undeliverable",
        False,
    )
    assert body["dns"]["error_code"] == "nxdomain" and body["dns"]["status"] == "invalid"
    assert body["mailbox"]["reason_code"] == "skipped"
    assert len(mail_hosts.handler.recipients) == probed


@pytest.mark.parametrize("domain", ["nullmx.test", "allnull.test"])
async def test_null_mx_accepts_no_mail(
    http: httpx.AsyncClient, headers: dict[str, str], domain: str
) -> None:
    body = await validate(http, headers, f"anyone@{domain}")
    assert body["verdict"] == "undeliverable"
    assert body["dns"]["null_mx"] is True and body["dns"]["error_code"] == "null_mx"


async def test_dns_failure_is_undetermined(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    # dnsmasq has no upstream: it REFUSES names outside its zones, as a broken resolver would.
    body = await validate(http, headers, "someone@elsewhere.org")
    assert (body["status"], body["verdict"], body["deliverable"]) == (
        "undetermined",
        "unknown",
        None,
    )
    assert body["dns"]["status"] == "undetermined" and body["dns"]["error_code"] == "dns_error"


@pytest.mark.parametrize("address", ["not-an-address", "two@@ok.test", "dot.@ok.test", ""])
async def test_bad_syntax_is_answered_without_network(
    http: httpx.AsyncClient, headers: dict[str, str], mail_hosts: MailHosts, address: str
) -> None:
    if not address:  # the contract's minLength: an empty body field is a 422
        response = await http.post(VALIDATE, json={"email": address}, headers=headers)
        assert response.status_code == 422
        return
    probed = len(mail_hosts.handler.recipients)
    body = await validate(http, headers, address)
    assert (body["status"], body["verdict"], body["deliverable"]) == (
        "invalid",
        "undeliverable",
        False,
    )
    assert body["syntax"]["is_valid"] is False and body["syntax"]["error"]
    assert body["dns"]["error_code"] == "skipped" and body["mailbox"]["reason_code"] == "skipped"
    assert len(mail_hosts.handler.recipients) == probed


async def test_disposable_domain(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    assert DISPOSABLE in blocklist
    body = await validate(http, headers, f"temp@{DISPOSABLE}")
    assert body["disposable"]["is_disposable"] is True
    assert (body["status"], body["verdict"], body["is_valid"]) == ("disposable", "risky", False)
    assert body["mailbox"]["is_valid"] is True  # the mailbox exists; it just won't last


async def test_catch_all_server_is_risky(http: httpx.AsyncClient, headers: dict[str, str]) -> None:
    body = await validate(http, headers, "whoever@any.test")
    assert (body["status"], body["verdict"], body["deliverable"]) == ("catch_all", "risky", None)
    mailbox = body["mailbox"]
    assert mailbox["catch_all"] is True and mailbox["controls_accepted"] == 1


@pytest.mark.parametrize(
    ("address", "reason_code"),
    [("grey@ok.test", "temporary"), ("blocked@ok.test", "policy")],
)
async def test_soft_or_policy_refusal_is_unknown(
    http: httpx.AsyncClient, headers: dict[str, str], address: str, reason_code: str
) -> None:
    body = await validate(http, headers, address)
    assert (body["status"], body["verdict"], body["deliverable"]) == (
        "undetermined",
        "unknown",
        None,
    )
    assert body["mailbox"]["reason_code"] == reason_code


@pytest.mark.parametrize(
    ("address", "reason_code", "limit"),
    [("x@refused.test", "unreachable", TIMEOUT), ("x@silent.test", "timeout", 3 * TIMEOUT)],
)
async def test_unreachable_mail_server_is_unknown_and_quick(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    address: str,
    reason_code: str,
    limit: float,
) -> None:
    started = time.monotonic()
    body = await validate(http, headers, address)
    assert time.monotonic() - started < limit
    assert (body["status"], body["verdict"], body["deliverable"]) == (
        "undetermined",
        "unknown",
        None,
    )
    assert body["is_valid"] is True  # the domain takes mail; only the mailbox is unknown
    assert body["mailbox"]["reason_code"] == reason_code and body["mailbox"]["error"]


@pytest.mark.parametrize(
    "payload",
    [{"email": 5}, {"email": ["alice@ok.test"]}, {"email": None}, {}, {"email": "a" * 321}],
)
async def test_wrong_body_is_422(
    http: httpx.AsyncClient, headers: dict[str, str], payload: dict[str, Any]
) -> None:
    response = await http.post(VALIDATE, json=payload, headers=headers)
    assert response.status_code == 422, response.text


async def test_needs_credentials_and_the_email_read_scope(http: httpx.AsyncClient) -> None:
    anonymous = await http.post(VALIDATE, json={"email": "alice@ok.test"})
    assert anonymous.status_code == 401
    owner = await new_user(http)
    narrow = (await new_api_key(http, owner, scopes=["mailbox:read"]))["key"]
    refused = await http.post(
        VALIDATE, json={"email": "alice@ok.test"}, headers={"X-API-Key": narrow}
    )
    assert refused.status_code == 403
    reader = (await new_api_key(http, owner, scopes=["email:read"]))["key"]
    allowed = await http.post(
        VALIDATE, json={"email": "alice@ok.test"}, headers={"X-API-Key": reader}
    )
    assert allowed.status_code == 200 and allowed.json()["verdict"] == "deliverable"


async def test_official_sdk_parses_the_answer(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    key = (await new_api_key(http, owner, scopes=["email:read"]))["key"]
    base_url = str(http.base_url).rstrip("/")
    async with AsyncMailcue(api_key=key, base_url=base_url, max_retries=0) as client:
        result = await client.emails.validate("carol@ok.test")
    assert result.status == "invalid" and result.verdict == "undeliverable"
    assert result.mailbox.smtp_code == 550 and result.dns.mx_records == ["10 mx.ok.test."]


GRAPHQL_VALIDATE = """
query ($email: String!) {
  validateEmail(email: $email) {
    email isValid status verdict deliverable confidence reason
    syntax { isValid localPart domain }
    dns { isValid hasMx mxRecords status errorCode }
    mailbox { isValid smtpCode catchAll transport controlProbes { verdict } }
    disposable { isDisposable }
    catchAllRisk { score }
  }
}"""


async def test_graphql_gives_the_same_answer(
    http: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await http.post(
        "/graphql",
        json={"query": GRAPHQL_VALIDATE, "variables": {"email": "alice@ok.test"}},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    result = body["data"]["validateEmail"]
    assert (result["status"], result["verdict"], result["deliverable"]) == (
        "VALID",
        "DELIVERABLE",
        True,
    )
    assert result["dns"] == {
        "isValid": True,
        "hasMx": True,
        "mxRecords": ["10 mx.ok.test."],
        "status": "VALID",
        "errorCode": None,
    }
    assert result["mailbox"]["smtpCode"] == 250 and result["mailbox"]["transport"] == "DIRECT"
    assert result["catchAllRisk"] is None

    anonymous = await http.post(
        "/graphql", json={"query": GRAPHQL_VALIDATE, "variables": {"email": "alice@ok.test"}}
    )
    error = anonymous.json()["errors"][0]
    assert error["extensions"]["code"] == "UNAUTHENTICATED"


async def test_silent_dns_server_is_undetermined_and_bounded(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as mute:  # receives, never answers
        mute.bind(("127.0.0.1", 0))
        settings = node_settings(
            tmp_path_factory.mktemp("mute-dns"),
            dns_resolver=f"127.0.0.1:{mute.getsockname()[1]}",
            validation_timeout=0.5,
        )
        started = time.monotonic()
        result = await check_address(settings, "alice@ok.test")
    assert time.monotonic() - started < 2.0
    assert result.verdict is ValidationVerdict.UNKNOWN and result.deliverable is None
    assert result.dns.error_code == "timeout"
