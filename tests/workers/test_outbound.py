"""The outbound queue delivering for real: dnsmasq answers MX/TXT/A, aiosmtpd plays the
remote MX or the relay, an HTTPS server publishes MTA-STS policies, all on loopback.

Every test gets a fresh SQLite database through the real migrations (the
``queue_db`` fixture) and drives an :class:`OutboundWorker` with its own settings.
What is asserted is what the far side saw (bytes, envelope, EHLO, TLS, AUTH)
and what the queue and the sender's INBOX hold afterwards.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
import pytest_asyncio

from certs import TestCa
from conftest import node_settings
from dns_server import dns_server
from mailcue_server.app import MailcueServer
from mailcue_server.config import RelayTls
from mailcue_server.events.memory import MemoryBus
from mailcue_server.mail.dsn_params import DsnRequest, RecipientDsn, Return
from mailcue_server.store import mailboxes, message_queries, outbound, outbound_admin
from mailcue_server.store.db import Database
from mailcue_server.store.mail_models import INBOX, Message
from mailcue_server.store.outbound_models import MtaStsPolicyRecord
from mailcue_server.workers.outbound import OutboundWorker
from outbound_rig import Remote, password_authenticator, policy_server, remote_smtp, worker_factory
from waiting import eventually

STS_POLICY = "version: STSv1\r\nmode: enforce\r\nmx: mx.sts.test\r\nmax_age: 86400\r\n"
SENDER = "sender@local.test"


def _now() -> datetime:
    return datetime.now(UTC)


def _mail(subject: str, sender: str = SENDER, to: str = "bob@ok.test") -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@local.test>\r\n\r\n"
        "Hello.\r\n.A line that starts with a dot survives dot-stuffing.\r\n"
    ).encode()


async def _state(queue_id: int) -> str:
    return (await outbound_admin.get_entry(queue_id)).state


async def _inbox(address: str) -> list[EmailMessage]:
    page = await message_queries.list_page(address, INBOX)
    found = []
    for summary in page.messages:
        raw = await message_queries.raw_bytes(address, INBOX, summary.uid)
        found.append(message_from_bytes(raw, policy=policy.default))
    return found


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    return TestCa(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def stranger_ca(tmp_path_factory: pytest.TempPathFactory) -> TestCa:
    """A CA nobody was told to trust."""
    return TestCa(tmp_path_factory.mktemp("stranger"), name="Stranger CA")


@pytest_asyncio.fixture(scope="module")
async def resolver() -> AsyncIterator[str]:
    async with dns_server(
        mx=[
            ("ok.test", "mx.ok.test", 10),
            ("other.test", "mx.other.test", 10),
            ("sts.test", "mx.sts.test", 10),
            ("badsts.test", "mx.elsewhere.test", 10),
        ],
        hosts={
            name: ["127.0.0.1"]
            for name in (
                "mx.ok.test",
                "mx.other.test",
                "mx.sts.test",
                "mx.elsewhere.test",
                "mta-sts.sts.test",
                "mta-sts.badsts.test",
            )
        },
        txt={
            "_mta-sts.sts.test": ["v=STSv1; id=20261124T000000;"],
            "_mta-sts.badsts.test": ["v=STSv1; id=1;"],
        },
    ) as address:
        yield address


@pytest_asyncio.fixture(scope="module")
async def policy_port(ca: TestCa) -> AsyncIterator[int]:
    tls = ca.server_context("mta-sts.sts.test", "mta-sts.badsts.test")
    async with policy_server(STS_POLICY, tls) as port:
        yield port


@pytest.fixture
def make_worker(tmp_path: Path, resolver: str, bus: MemoryBus) -> Callable[..., OutboundWorker]:
    """A worker whose DNS is dnsmasq; keyword arguments are further settings."""
    return worker_factory(tmp_path / "node", resolver, bus)


async def test_delivers_exact_bytes_and_envelope_to_each_domains_mx(
    queue_db: Database, make_worker: Callable[..., OutboundWorker], stranger_ca: TestCa
) -> None:
    raw = _mail("exact bytes")
    # STARTTLS with a certificate nobody trusts: opportunistic TLS still uses it.
    async with remote_smtp(tls=stranger_ca.server_context("mx.ok.test")) as remote:
        worker = make_worker(outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(
            raw, SENDER, ["bob@ok.test", "Carol@OK.test", "dan@other.test"], now=_now()
        )
        assert await worker.run_once() == 1

    by_domain = {d.rcpt_tos[0].rpartition("@")[2]: d for d in remote.received}
    assert sorted(by_domain) == ["ok.test", "other.test"]
    assert by_domain["ok.test"].rcpt_tos == ["bob@ok.test", "Carol@ok.test"]
    assert by_domain["other.test"].rcpt_tos == ["dan@other.test"]
    for delivery in remote.received:
        assert delivery.content == raw
        assert delivery.mail_from == SENDER
        assert delivery.helo == "mail.local.test"
        assert delivery.tls
    entry = await outbound_admin.get_entry(queue_id)
    assert entry.state == "delivered"
    assert entry.attempts == 1
    assert {r.state for r in entry.recipients} == {"delivered"}
    assert {r.remote_host for r in entry.recipients} == {"mx.ok.test", "mx.other.test"}
    assert all(r.smtp_code == 250 for r in entry.recipients)


async def test_a_4xx_is_retried_later_and_then_delivered(
    queue_db: Database, make_worker: Callable[..., OutboundWorker]
) -> None:
    remote = Remote(data_replies=["451 4.3.0 Mailbox busy, try again later"])
    async with remote_smtp(remote):
        worker = make_worker(outbound_smtp_port=remote.port, outbound_retry_base=0.5)
        queue_id = await outbound.enqueue(_mail("retry"), SENDER, ["bob@ok.test"], now=_now())
        assert await worker.run_once() == 1

        entry = await outbound_admin.get_entry(queue_id)
        assert entry.state == "queued"
        assert entry.next_attempt_at > _now()
        [recipient] = entry.recipients
        assert (recipient.state, recipient.smtp_code, recipient.status) == (
            "pending",
            451,
            "4.3.0",
        )
        assert "Mailbox busy" in recipient.diagnostic
        assert await worker.run_once() == 0  # not due yet

        worker.start()  # the loop wakes when the retry is due, not at the 5 s poll
        try:
            await eventually(lambda: _has_state(queue_id, "delivered"), timeout=4)
        finally:
            await worker.stop()
    assert remote.data_commands == 2
    assert len(remote.received) == 1
    entry = await outbound_admin.get_entry(queue_id)
    assert entry.attempts == 2
    assert entry.recipients[0].attempts == 2


async def _has_state(queue_id: int, state: str) -> bool:
    return await _state(queue_id) == state


async def test_a_5xx_or_unknown_domain_bounces_to_the_local_senders_inbox(
    queue_db: Database, bus: MemoryBus, make_worker: Callable[..., OutboundWorker]
) -> None:
    await mailboxes.create_mailbox(SENDER, bus=bus)
    remote = Remote(rcpt_replies={"nobody@ok.test": ["550 5.1.1 No such user here"]})
    raw = _mail("bounce me")
    async with remote_smtp(remote):
        worker = make_worker(outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(
            raw, SENDER, ["nobody@ok.test", "bob@ok.test", "lost@gone.test"], now=_now()
        )
        await worker.run_once()

    assert [d.rcpt_tos for d in remote.received] == [["bob@ok.test"]]
    assert await _state(queue_id) == "partial"
    [dsn] = await _inbox(SENDER)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["From"].addresses[0].username == "MAILER-DAEMON"
    assert dsn["Auto-Submitted"] == "auto-replied"
    human, status, headers = dsn.get_payload()
    assert "nobody@ok.test" in human.get_content()
    assert status.get_content_type() == "message/delivery-status"
    per_message, *per_recipient = status.get_payload()
    assert per_message["Reporting-MTA"] == "dns; mail.local.test"
    blocks = {block["Final-Recipient"]: block for block in per_recipient}
    assert set(blocks) == {"rfc822; nobody@ok.test", "rfc822; lost@gone.test"}
    nobody = blocks["rfc822; nobody@ok.test"]
    assert (nobody["Action"], nobody["Status"]) == ("failed", "5.1.1")
    assert nobody["Diagnostic-Code"] == "smtp; 550 5.1.1 No such user here"
    assert nobody["Remote-MTA"] == "dns; mx.ok.test"
    lost = blocks["rfc822; lost@gone.test"]
    assert lost["Status"] == "5.1.2"
    assert "gone.test does not exist" in lost["Diagnostic-Code"]
    assert headers.get_content_type() == "text/rfc822-headers"
    quoted = headers.get_payload(decode=True)
    assert b"Subject: bounce me" in quoted
    assert b"Message-ID: <bounce-me@local.test>" in quoted
    assert b"dot-stuffing" not in quoted  # the header only, not the body
    total, _ = await outbound_admin.list_entries()
    assert total == 1  # the bounce went to the INBOX, not the queue


def _failed_recipients(dsn: EmailMessage) -> list[str]:
    _, status, _ = dsn.get_payload()
    return [str(block["Final-Recipient"]) for block in status.get_payload()[1:]]


async def test_a_5xx_bounces_after_its_own_attempt_while_a_4xx_recipient_waits(
    queue_db: Database, bus: MemoryBus, make_worker: Callable[..., OutboundWorker]
) -> None:
    """Postfix's way: the 550 is bounced at once, the 450 is retried and later delivered."""
    await mailboxes.create_mailbox(SENDER, bus=bus)
    remote = Remote(
        rcpt_replies={
            "gone@ok.test": ["550 5.1.1 No such user here"],
            "busy@ok.test": ["450 4.2.1 Mailbox busy, try again later"],
        }
    )
    async with remote_smtp(remote):
        worker = make_worker(outbound_smtp_port=remote.port, outbound_retry_base=0.3)
        queue_id = await outbound.enqueue(
            _mail("split fate"), SENDER, ["gone@ok.test", "busy@ok.test"], now=_now()
        )
        assert await worker.run_once() == 1

        # Right after the first attempt: the DSN for the 550 only, the 450 still queued.
        [dsn] = await _inbox(SENDER)
        assert _failed_recipients(dsn) == ["rfc822; gone@ok.test"]
        assert "busy@ok.test" not in dsn.get_payload()[0].get_content()
        entry = await outbound_admin.get_entry(queue_id)
        assert entry.state == "queued"
        states = {r.address: (r.state, r.bounced_at is not None) for r in entry.recipients}
        assert states == {"gone@ok.test": ("failed", True), "busy@ok.test": ("pending", False)}

        worker.start()
        try:
            await eventually(lambda: _has_state(queue_id, "partial"), timeout=5)
        finally:
            await worker.stop()
    assert [d.rcpt_tos for d in remote.received] == [["busy@ok.test"]]
    assert len(await _inbox(SENDER)) == 1  # no second bounce for the first failure
    entry = await outbound_admin.get_entry(queue_id)
    assert {r.address: r.state for r in entry.recipients} == {
        "gone@ok.test": "failed",
        "busy@ok.test": "delivered",
    }


async def test_a_deferred_recipient_that_expires_gets_a_bounce_of_its_own(
    queue_db: Database, bus: MemoryBus, make_worker: Callable[..., OutboundWorker]
) -> None:
    await mailboxes.create_mailbox(SENDER, bus=bus)
    remote = Remote(
        rcpt_replies={
            "gone@ok.test": ["550 5.1.1 No such user here"],
            "busy@ok.test": ["452 4.2.2 Mailbox full"] * 50,
        }
    )
    async with remote_smtp(remote):
        worker = make_worker(
            outbound_smtp_port=remote.port,
            outbound_retry_base=0.1,
            outbound_give_up_after=0.6,
        )
        queue_id = await outbound.enqueue(
            _mail("two bounces"), SENDER, ["gone@ok.test", "busy@ok.test"], now=_now()
        )
        worker.start()
        worker.wake()
        try:
            await eventually(lambda: _has_state(queue_id, "failed"), timeout=5)
        finally:
            await worker.stop()
    by_recipients = {tuple(_failed_recipients(dsn)): dsn for dsn in await _inbox(SENDER)}
    assert sorted(by_recipients) == [("rfc822; busy@ok.test",), ("rfc822; gone@ok.test",)]
    _, status, _ = by_recipients[("rfc822; busy@ok.test",)].get_payload()
    assert status.get_payload()[1]["Status"] == "5.4.7"


@pytest.mark.parametrize(
    ("setting", "ret", "returned"),
    [
        ("full", None, "message/rfc822"),
        ("full", Return.HDRS, "text/rfc822-headers"),
        ("headers", None, "text/rfc822-headers"),
        ("headers", Return.FULL, "message/rfc822"),
    ],
)
async def test_the_senders_ret_wins_over_the_bounce_return_setting(
    queue_db: Database,
    bus: MemoryBus,
    make_worker: Callable[..., OutboundWorker],
    setting: str,
    ret: Return | None,
    returned: str,
) -> None:
    await mailboxes.create_mailbox(SENDER, bus=bus)
    remote = Remote(rcpt_replies={"nobody@ok.test": ["550 5.1.1 No such user here"]})
    async with remote_smtp(remote):
        worker = make_worker(outbound_smtp_port=remote.port, bounce_return=setting)
        await outbound.enqueue(
            _mail("what comes back"), SENDER, ["nobody@ok.test"], dsn=DsnRequest(ret=ret)
        )
        await worker.run_once()
    [dsn] = await _inbox(SENDER)
    assert dsn.get_payload()[2].get_content_type() == returned


async def test_dsn_parameters_go_on_to_a_next_hop_that_offers_dsn(
    queue_db: Database, make_worker: Callable[..., OutboundWorker]
) -> None:
    """RFC 3461 section 6.2: the next hop reports as the sender asked; one without DSN
    gets plain commands."""
    request = DsnRequest(
        ret=Return.HDRS,
        envid="order+42",
        recipients={
            "bob@ok.test": RecipientDsn(notify=("SUCCESS", "FAILURE"), orcpt="rfc822;Sales@x.test")
        },
    )
    for offer_dsn in (True, False):
        remote = Remote(offer_dsn=offer_dsn)
        async with remote_smtp(remote):
            worker = make_worker(outbound_smtp_port=remote.port)
            await outbound.enqueue(
                _mail("pass it on"), SENDER, ["bob@ok.test", "eve@ok.test"], dsn=request
            )
            await worker.run_once()
        [delivery] = remote.received
        assert delivery.rcpt_tos == ["bob@ok.test", "eve@ok.test"]
        if offer_dsn:
            assert remote.mail_params == [{"RET": "HDRS", "ENVID": "order+2B42"}]
            assert remote.rcpt_params == {
                "bob@ok.test": {"NOTIFY": "SUCCESS,FAILURE", "ORCPT": "rfc822;Sales@x.test"},
                "eve@ok.test": {},
            }


async def test_a_null_sender_failure_is_never_bounced(
    queue_db: Database, make_worker: Callable[..., OutboundWorker]
) -> None:
    remote = Remote(rcpt_replies={"nobody@ok.test": ["550 5.1.1 No such user here"]})
    async with remote_smtp(remote):
        worker = make_worker(outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(_mail("a bounce"), "<>", ["nobody@ok.test"], now=_now())
        await worker.run_once()
    assert await _state(queue_id) == "failed"
    total, _ = await outbound_admin.list_entries()
    assert total == 1
    assert await Message.all().count() == 0


async def test_a_remote_sender_gets_the_bounce_through_the_queue_with_null_sender(
    queue_db: Database, make_worker: Callable[..., OutboundWorker]
) -> None:
    sender = "someone@other.test"
    remote = Remote(rcpt_replies={"nobody@ok.test": ["550 5.1.1 No such user here"]})
    async with remote_smtp(remote):
        worker = make_worker(outbound_smtp_port=remote.port)
        await outbound.enqueue(_mail("far", sender=sender), sender, ["nobody@ok.test"], now=_now())
        await worker.run_once()  # fails, queues the bounce
        _, entries = await outbound_admin.list_entries(state="queued")
        [bounce] = entries
        assert bounce.mail_from == ""
        await worker.run_once()  # delivers the bounce

    [delivery] = remote.received
    assert (delivery.mail_from, delivery.rcpt_tos) == ("<>", [sender])
    dsn = message_from_bytes(delivery.content, policy=policy.default)
    assert dsn.get_content_type() == "multipart/report"
    assert await _state(bounce.id) == "delivered"


async def test_still_deferred_mail_bounces_when_the_deadline_passes(
    queue_db: Database, bus: MemoryBus, make_worker: Callable[..., OutboundWorker]
) -> None:
    await mailboxes.create_mailbox(SENDER, bus=bus)
    remote = Remote(rcpt_replies={"bob@ok.test": ["452 4.2.2 Mailbox full"] * 50})
    async with remote_smtp(remote):
        worker = make_worker(
            outbound_smtp_port=remote.port,
            outbound_retry_base=0.1,
            outbound_give_up_after=0.6,
        )
        queue_id = await outbound.enqueue(_mail("expire"), SENDER, ["bob@ok.test"], now=_now())
        worker.start()
        worker.wake()
        try:
            await eventually(lambda: _has_state(queue_id, "failed"), timeout=5)
        finally:
            await worker.stop()
    entry = await outbound_admin.get_entry(queue_id)
    assert entry.attempts >= 2
    [dsn] = await _inbox(SENDER)
    _, status, _ = dsn.get_payload()
    [block] = status.get_payload()[1:]
    assert block["Status"] == "5.4.7"  # delivery time expired
    assert block["Diagnostic-Code"] == "smtp; 452 4.2.2 Mailbox full"


async def test_enforced_mta_sts_defers_rather_than_send_without_valid_tls(
    queue_db: Database,
    make_worker: Callable[..., OutboundWorker],
    ca: TestCa,
    stranger_ca: TestCa,
    policy_port: int,
) -> None:
    sts = {"outbound_mta_sts_port": policy_port, "outbound_ca_file": str(ca.ca_file)}
    raw = _mail("protected", to="carol@sts.test")

    async with remote_smtp() as plaintext_only:
        worker = make_worker(outbound_smtp_port=plaintext_only.port, **sts)
        queue_id = await outbound.enqueue(raw, SENDER, ["carol@sts.test"], now=_now())
        await worker.run_once()
    assert plaintext_only.mail_commands == 0  # nothing of the message went out in clear
    [recipient] = (await outbound_admin.get_entry(queue_id)).recipients
    assert (recipient.state, recipient.status) == ("pending", "4.7.5")
    assert "STARTTLS" in recipient.diagnostic
    assert await MtaStsPolicyRecord.filter(domain="sts.test").count() == 1

    untrusted = stranger_ca.server_context("mx.sts.test")
    async with remote_smtp(tls=untrusted) as wrong_certificate:
        worker = make_worker(outbound_smtp_port=wrong_certificate.port, **sts)
        await outbound_admin.retry_now(queue_id, _now())
        await worker.run_once()
    assert wrong_certificate.mail_commands == 0
    [recipient] = (await outbound_admin.get_entry(queue_id)).recipients
    assert recipient.state == "pending"
    assert "certificate" in recipient.diagnostic.lower()

    async with remote_smtp(tls=ca.server_context("mx.sts.test")) as valid:
        worker = make_worker(outbound_smtp_port=valid.port, **sts)
        await outbound_admin.retry_now(queue_id, _now())
        await worker.run_once()
    [delivery] = valid.received
    assert delivery.tls and delivery.content == raw
    assert await _state(queue_id) == "delivered"


async def test_enforced_mta_sts_skips_an_mx_the_policy_does_not_list(
    queue_db: Database, make_worker: Callable[..., OutboundWorker], ca: TestCa, policy_port: int
) -> None:
    async with remote_smtp(tls=ca.server_context("mx.elsewhere.test")) as remote:
        worker = make_worker(
            outbound_smtp_port=remote.port,
            outbound_mta_sts_port=policy_port,
            outbound_ca_file=str(ca.ca_file),
        )
        queue_id = await outbound.enqueue(_mail("mx"), SENDER, ["eve@badsts.test"], now=_now())
        await worker.run_once()
    assert remote.sessions == 0
    [recipient] = (await outbound_admin.get_entry(queue_id)).recipients
    assert recipient.state == "pending"
    assert "is allowed by its MTA-STS policy" in recipient.diagnostic


@pytest.mark.parametrize("password", ["s3cret-relay", "wrong"])
async def test_relay_mode_logs_in_and_a_refused_login_is_retried(
    queue_db: Database, make_worker: Callable[..., OutboundWorker], ca: TestCa, password: str
) -> None:
    raw = _mail("via relay", to="someone@far-away.example")
    async with remote_smtp(
        tls=ca.server_context("relay.test", ips=("127.0.0.1",)),
        require_tls=True,
        authenticator=password_authenticator("relay-user", "s3cret-relay"),
    ) as relay:
        worker = make_worker(
            relay_host="127.0.0.1",
            relay_port=relay.port,
            relay_username="relay-user",
            relay_password=password,
            relay_tls="starttls",
            outbound_ca_file=str(ca.ca_file),
        )
        queue_id = await outbound.enqueue(raw, SENDER, ["someone@far-away.example"], now=_now())
        await worker.run_once()

    entry = await outbound_admin.get_entry(queue_id)
    if password == "wrong":
        assert relay.received == []
        assert entry.state == "queued"  # the operator fixes the password; nothing bounces
        [recipient] = entry.recipients
        assert (recipient.state, recipient.smtp_code) == ("pending", 535)
        assert "refused our login" in recipient.diagnostic
        return
    [delivery] = relay.received
    assert (delivery.login, delivery.tls) == ("relay-user", True)
    assert (delivery.mail_from, delivery.rcpt_tos) == (SENDER, ["someone@far-away.example"])
    assert delivery.content == raw
    assert entry.state == "delivered"


async def test_a_relay_login_fixed_while_running_is_used_from_the_next_attempt(
    queue_db: Database, make_worker: Callable[..., OutboundWorker], bus: MemoryBus, ca: TestCa
) -> None:
    raw = _mail("login fixed live", to="someone@far-away.example")
    async with remote_smtp(
        tls=ca.server_context("relay.test", ips=("127.0.0.1",)),
        require_tls=True,
        authenticator=password_authenticator("relay-user", "s3cret-relay"),
    ) as relay:
        started = make_worker(
            relay_host="127.0.0.1",
            relay_port=relay.port,
            relay_username="relay-user",
            relay_password="old-password",
            relay_tls="starttls",
            outbound_ca_file=str(ca.ca_file),
        ).settings
        live = [started]
        worker = OutboundWorker(started, bus=bus, live=lambda: live[0])
        queue_id = await outbound.enqueue(raw, SENDER, ["someone@far-away.example"], now=_now())
        assert await worker.run_once() == 1
        [refused] = (await outbound_admin.get_entry(queue_id)).recipients
        # What PUT /system/settings installs on a running node (store.settings.with_live).
        live[0] = started.model_copy(update={"relay_password": "s3cret-relay"})
        await outbound_admin.retry_now(queue_id, _now())
        assert await worker.run_once() == 1

    assert (refused.state, refused.smtp_code) == ("pending", 535)
    [delivery] = relay.received
    assert (delivery.login, delivery.content) == ("relay-user", raw)
    assert (await outbound_admin.get_entry(queue_id)).state == "delivered"


async def test_a_claim_left_by_a_dead_worker_is_delivered_once_its_lease_runs_out(
    queue_db: Database, make_worker: Callable[..., OutboundWorker]
) -> None:
    async with remote_smtp() as remote:
        worker = make_worker(outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(_mail("orphan"), SENDER, ["bob@ok.test"], now=_now())
        [dead] = await outbound.claim_due(
            "dead-node", now=_now(), lease=timedelta(seconds=0.5), limit=10
        )
        assert await worker.run_once() == 0  # leased: not ours to take
        await asyncio.sleep(0.55)
        assert await worker.run_once() == 1
    assert len(remote.received) == 1
    assert await _state(queue_id) == "delivered"
    with pytest.raises(outbound.LeaseLost):  # the dead worker cannot overwrite the outcome
        await outbound.reschedule(dead.id, dead.token, at=_now(), error="late")


async def test_stopping_gives_claims_back_for_the_next_worker(
    queue_db: Database, make_worker: Callable[..., OutboundWorker]
) -> None:
    remote = Remote(data_gate=asyncio.Event())
    async with remote_smtp(remote):
        first = make_worker(outbound_smtp_port=remote.port, outbound_poll_interval=0.05)
        queue_id = await outbound.enqueue(_mail("handover"), SENDER, ["bob@ok.test"], now=_now())
        first.start()
        try:
            await eventually(lambda: _true(remote.data_commands == 1))
        finally:
            await first.stop(grace=0.1)  # DATA hangs: cut it off and give the claim back
        assert remote.data_gate is not None
        remote.data_gate.set()
        second = make_worker(outbound_smtp_port=remote.port)
        assert await second.run_once() == 1  # at once: no lease left to expire
    assert len(remote.received) == 1
    assert await _state(queue_id) == "delivered"


async def _true(value: bool) -> bool:
    return value


async def test_mail_queued_before_a_restart_is_delivered_after_it(
    tmp_path: Path, resolver: str
) -> None:
    data_dir = tmp_path / "node"
    async with remote_smtp() as remote:
        common = {"dns_resolver": resolver, "outbound_smtp_port": remote.port}
        first = MailcueServer(node_settings(data_dir, **common))  # no delivery worker
        await first.start()
        try:
            assert first.outbound is None
            queue_id = await outbound.enqueue(
                _mail("survivor"), SENDER, ["bob@ok.test"], now=_now()
            )
        finally:
            await first.stop()
        assert remote.received == []

        second = MailcueServer(node_settings(data_dir, outbound_enabled=True, **common))
        await second.start()
        try:
            assert second.outbound is not None
            await eventually(lambda: _has_state(queue_id, "delivered"))
        finally:
            await second.stop()
    assert [d.rcpt_tos for d in remote.received] == [["bob@ok.test"]]


async def test_a_relay_set_while_running_is_used_from_the_next_attempt(
    queue_db: Database, make_worker: Callable[..., OutboundWorker], bus: MemoryBus
) -> None:
    with socket.socket() as probe:  # a port nobody listens on: the MX refuses
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    started = make_worker(outbound_smtp_port=closed).settings
    live = [started]
    worker = OutboundWorker(started, bus=bus, live=lambda: live[0])
    raw = _mail("relay later")
    queue_id = await outbound.enqueue(raw, SENDER, ["bob@ok.test"], now=_now())
    await worker.run_once()
    assert (await outbound_admin.get_entry(queue_id)).state == "queued"  # deferred: MX refused

    async with remote_smtp() as relay:
        # What PUT /system/settings installs on a running node (store.settings.with_live).
        live[0] = started.model_copy(
            update={"relay_host": "127.0.0.1", "relay_port": relay.port, "relay_tls": "none"}
        )
        await outbound_admin.retry_now(queue_id, _now())
        assert await worker.run_once() == 1
    [delivery] = relay.received
    assert (delivery.rcpt_tos, delivery.content) == (["bob@ok.test"], raw)
    assert (await outbound_admin.get_entry(queue_id)).state == "delivered"


async def test_the_relays_tls_mode_and_ca_file_set_while_running_apply_to_the_next_attempt(
    queue_db: Database, make_worker: Callable[..., OutboundWorker], bus: MemoryBus, ca: TestCa
) -> None:
    raw = _mail("tls set live", to="someone@far-away.example")
    relay_tls = ca.server_context("relay.test", ips=("127.0.0.1",))
    async with remote_smtp(tls=relay_tls, require_tls=True) as relay:
        # Implicit TLS against a STARTTLS relay, trusting its CA: the handshake fails.
        started = make_worker(
            relay_host="127.0.0.1",
            relay_port=relay.port,
            relay_tls="tls",
            outbound_ca_file=str(ca.ca_file),
        ).settings
        live = [started]
        worker = OutboundWorker(started, bus=bus, live=lambda: live[0])
        queue_id = await outbound.enqueue(raw, SENDER, ["someone@far-away.example"], now=_now())

        async def attempt() -> tuple[str, str]:
            await outbound_admin.retry_now(queue_id, _now())
            assert await worker.run_once() == 1
            [recipient] = (await outbound_admin.get_entry(queue_id)).recipients
            return recipient.state, recipient.diagnostic

        first = await attempt()
        # What PUT /system/settings installs on a running node (store.settings.with_live).
        live[0] = started.model_copy(
            update={"relay_tls": RelayTls.STARTTLS, "outbound_ca_file": ""}
        )
        second = await attempt()
        live[0] = live[0].model_copy(update={"outbound_ca_file": str(ca.ca_file)})
        third = await attempt()

    assert first[0] == second[0] == "pending"
    assert "WRONG_VERSION_NUMBER" in first[1]  # spoke TLS to a plaintext greeting
    assert "CERTIFICATE_VERIFY_FAILED" in second[1]  # STARTTLS, but the CA left out
    assert third[0] == "delivered"
    [delivery] = relay.received
    assert delivery.tls and delivery.content == raw
    assert relay.sessions == 3
