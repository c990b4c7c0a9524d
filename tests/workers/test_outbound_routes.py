"""Outbound routing end to end: an :class:`OutboundWorker` delivers queued mail by
the answers of dnsmasq serving :mod:`routing_zone`, and the outcome on the queue
entry (delivered / pending and retried / failed and bounced, with its enhanced
status) and the bounce in the sender's INBOX are checked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import dns.rcode
import pytest
import pytest_asyncio

from certs import TestCa
from dns_server import dns_server
from mailcue_server.events.memory import MemoryBus
from mailcue_server.store import mailboxes, message_queries, outbound, outbound_admin
from mailcue_server.store.db import Database
from mailcue_server.store.mail_models import INBOX
from mailcue_server.store.outbound_models import MtaStsPolicyRecord
from mailcue_server.workers.outbound import OutboundWorker
from outbound_rig import policy_server, remote_smtp, worker_factory
from routing_zone import (
    SENDER,
    STS_POLICY,
    ZONE_CNAMES,
    ZONE_HOSTS,
    ZONE_MX,
    ZONE_TXT,
    mail,
    now,
)
from scripted_dns import Reply, scripted_dns


@pytest_asyncio.fixture(scope="module")
async def zone() -> AsyncIterator[str]:
    """dnsmasq serving the zone above; ``"127.0.0.1:PORT"``."""
    async with dns_server(mx=ZONE_MX, hosts=ZONE_HOSTS, cnames=ZONE_CNAMES, txt=ZONE_TXT) as at:
        yield at


@pytest.fixture
def make_worker(tmp_path: Path, zone: str, bus: MemoryBus) -> Callable[..., OutboundWorker]:
    """A worker whose DNS is dnsmasq; keyword arguments are further settings."""
    return worker_factory(tmp_path / "node", zone, bus)


def _by_address(entry: outbound_admin.QueueEntry) -> dict[str, outbound.RecipientReport]:
    return {recipient.address: recipient for recipient in entry.recipients}


def _status_blocks(raw: bytes) -> Iterator[Any]:
    """The per-recipient blocks of a DSN's message/delivery-status part."""
    dsn: Any = message_from_bytes(raw, policy=policy.default)
    _, status, _ = dsn.get_payload()
    yield from status.get_payload()[1:]


async def test_each_route_delivers_to_the_host_dns_names(
    queue_db: Database, make_worker: Callable[..., OutboundWorker]
) -> None:
    recipients = ["eve@fallback.test", "frank@implicit.test", "gina@alias.test"]
    async with remote_smtp() as remote:
        worker = make_worker(outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(
            mail("routes", ", ".join(recipients)), SENDER, recipients, now=now()
        )
        assert await worker.run_once() == 1

    assert sorted(d.rcpt_tos[0] for d in remote.received) == sorted(recipients)
    entry = await outbound_admin.get_entry(queue_id)
    assert entry.state == "delivered"
    hosts = {r.address: (r.state, r.smtp_code, r.remote_host) for r in entry.recipients}
    assert hosts == {
        # The preferred MX (5) refuses connections: the next one (10) takes the mail.
        "eve@fallback.test": ("delivered", 250, "up.fallback.test"),
        # No MX: the domain itself.
        "frank@implicit.test": ("delivered", 250, "implicit.test"),
        # The domain is a CNAME: its target's MX.
        "gina@alias.test": ("delivered", 250, "mx.target.test"),
    }


@pytest.mark.parametrize("domain", ["null.test", "allnull.test"])
async def test_a_null_mx_bounces_at_once_with_5_1_10_and_no_connection(
    queue_db: Database, bus: MemoryBus, make_worker: Callable[..., OutboundWorker], domain: str
) -> None:
    await mailboxes.create_mailbox(SENDER, bus=bus)
    rcpt = f"carol@{domain}"
    async with remote_smtp() as remote:
        worker = make_worker(outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(mail("null mx", rcpt), SENDER, [rcpt], now=now())
        await worker.run_once()
    assert remote.sessions == 0

    entry = await outbound_admin.get_entry(queue_id)
    assert (entry.state, entry.attempts) == ("failed", 1)
    [recipient] = entry.recipients
    # No server answered, so no reply code is recorded (RFC 7505 names 556 for the report).
    assert (recipient.state, recipient.smtp_code, recipient.status) == ("failed", 0, "5.1.10")
    assert "null MX" in recipient.diagnostic

    page = await message_queries.list_page(SENDER, INBOX)
    [summary] = page.messages
    [block] = _status_blocks(await message_queries.raw_bytes(SENDER, INBOX, summary.uid))
    assert (block["Final-Recipient"], block["Action"]) == (f"rfc822; {rcpt}", "failed")
    assert block["Status"] == "5.1.10"
    # Folded after the colon on the wire (the line is long); the parser keeps that space.
    diagnostic = block["Diagnostic-Code"].strip()
    assert diagnostic.startswith(f"X-MailCue; {domain} publishes a null MX")
    assert block["Remote-MTA"] is None


async def test_unanswered_dns_keeps_the_message_queued_with_4_4_3(
    queue_db: Database, bus: MemoryBus, make_worker: Callable[..., OutboundWorker]
) -> None:
    await mailboxes.create_mailbox(SENDER, bus=bus)
    async with remote_smtp() as remote:
        worker = make_worker(outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(
            mail("no dns", "dan@far.example.org"), SENDER, ["dan@far.example.org"], now=now()
        )
        await worker.run_once()
    assert remote.sessions == 0

    entry = await outbound_admin.get_entry(queue_id)
    assert entry.state == "queued"
    assert entry.next_attempt_at > now()  # retried later, not bounced
    [recipient] = entry.recipients
    assert (recipient.state, recipient.smtp_code, recipient.status) == ("pending", 0, "4.4.3")
    assert "far.example.org" in recipient.diagnostic
    assert (await message_queries.list_page(SENDER, INBOX)).messages == []


async def test_mx_hosts_that_do_not_exist_bounce_for_good_with_5_4_4(
    queue_db: Database, bus: MemoryBus, make_worker: Callable[..., OutboundWorker]
) -> None:
    await mailboxes.create_mailbox(SENDER, bus=bus)
    recipients = ["hal@ghost.test", "ida@lost.test"]
    async with remote_smtp() as remote:
        worker = make_worker(outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(
            mail("ghost hosts", ", ".join(recipients)), SENDER, recipients, now=now()
        )
        await worker.run_once()

    # ghost.test: its preferred MX does not exist, so the next one takes the mail.
    assert [d.rcpt_tos for d in remote.received] == [["hal@ghost.test"]]
    entry = await outbound_admin.get_entry(queue_id)
    assert (entry.state, entry.attempts) == ("partial", 1)  # closed now, not at the deadline
    reports = _by_address(entry)
    ghost, lost = reports["hal@ghost.test"], reports["ida@lost.test"]
    assert (ghost.state, ghost.remote_host) == ("delivered", "mx.ghost.test")
    # lost.test: no MX host name exists (NXDOMAIN for each), so no retry can find one;
    # like Postfix, a permanent "unable to route" (RFC 3463 X.4.4).
    assert (lost.state, lost.smtp_code, lost.status) == ("failed", 0, "5.4.4")
    assert lost.diagnostic == (
        "no mail host of lost.test has an address: "
        "nowhere.lost.test does not exist; gone.lost.test does not exist"
    )

    [summary] = (await message_queries.list_page(SENDER, INBOX)).messages
    [block] = _status_blocks(await message_queries.raw_bytes(SENDER, INBOX, summary.uid))
    assert (block["Final-Recipient"], block["Action"]) == ("rfc822; ida@lost.test", "failed")
    assert block["Status"] == "5.4.4"
    assert block["Remote-MTA"] is None


async def test_mx_hosts_that_exist_without_an_address_defer_with_4_4_4(
    queue_db: Database, bus: MemoryBus, make_worker: Callable[..., OutboundWorker]
) -> None:
    await mailboxes.create_mailbox(SENDER, bus=bus)
    async with remote_smtp() as remote:
        worker = make_worker(outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(
            mail("bare hosts", "jay@bare.test"), SENDER, ["jay@bare.test"], now=now()
        )
        await worker.run_once()
    assert remote.sessions == 0

    entry = await outbound_admin.get_entry(queue_id)
    assert entry.state == "queued"
    assert entry.next_attempt_at > now()  # retried later, bounced only at the deadline
    [recipient] = entry.recipients
    # One host name does not exist, but the other does: its addresses may yet appear.
    assert (recipient.state, recipient.smtp_code, recipient.status) == ("pending", 0, "4.4.4")
    assert recipient.diagnostic == (
        "no mail host of bare.test has an address: "
        "nowhere.bare.test does not exist; mx.bare.test has no address"
    )
    assert (await message_queries.list_page(SENDER, INBOX)).messages == []


async def test_a_failed_address_lookup_defers_with_4_4_4_beside_missing_hosts(
    queue_db: Database, bus: MemoryBus, make_worker: Callable[..., OutboundWorker]
) -> None:
    # mx2 does not exist; whether mx1 has an address is unknown (the server fails its A).
    replies: dict[tuple[str, str], Reply] = {
        ("shaky.test", "MX"): ("10 mx1.shaky.test.", "20 mx2.shaky.test."),
        ("mx1.shaky.test", "A"): dns.rcode.SERVFAIL,
        ("mx1.shaky.test", "AAAA"): (),
    }
    await mailboxes.create_mailbox(SENDER, bus=bus)
    async with scripted_dns(replies) as address, remote_smtp() as remote:
        worker = make_worker(dns_resolver=address, outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(
            mail("shaky", "kim@shaky.test"), SENDER, ["kim@shaky.test"], now=now()
        )
        await worker.run_once()
    assert remote.sessions == 0

    entry = await outbound_admin.get_entry(queue_id)
    assert entry.state == "queued"
    [recipient] = entry.recipients
    assert (recipient.state, recipient.smtp_code, recipient.status) == ("pending", 0, "4.4.4")
    assert recipient.diagnostic.startswith(
        "no mail host of shaky.test has an address: "
        "DNS lookup of the address of mx1.shaky.test failed: "
    )
    assert recipient.diagnostic.endswith("; mx2.shaky.test does not exist")
    assert (await message_queries.list_page(SENDER, INBOX)).messages == []


async def test_under_mta_sts_only_listed_hosts_count_and_their_absence_defers(
    tmp_path: Path, queue_db: Database, bus: MemoryBus, make_worker: Callable[..., OutboundWorker]
) -> None:
    # The policy lists only nowhere.stsgone.test, which does not exist; mx.stsgone.test
    # has an address but is not listed, so it is neither tried nor proof the domain is
    # unroutable. A policy can change (RFC 8461 section 5.1): defer, never bounce.
    (tmp_path / "ca").mkdir()
    ca = TestCa(tmp_path / "ca")
    await mailboxes.create_mailbox(SENDER, bus=bus)
    async with (
        policy_server(STS_POLICY, ca.server_context("mta-sts.stsgone.test")) as policy_port,
        remote_smtp(tls=ca.server_context("mx.stsgone.test")) as remote,
    ):
        worker = make_worker(
            outbound_smtp_port=remote.port,
            outbound_mta_sts_port=policy_port,
            outbound_ca_file=str(ca.ca_file),
        )
        queue_id = await outbound.enqueue(
            mail("sts gone", "lea@stsgone.test"), SENDER, ["lea@stsgone.test"], now=now()
        )
        await worker.run_once()
    assert remote.sessions == 0

    entry = await outbound_admin.get_entry(queue_id)
    assert entry.state == "queued"
    [recipient] = entry.recipients
    assert (recipient.state, recipient.smtp_code, recipient.status) == ("pending", 0, "4.4.4")
    assert recipient.diagnostic == (
        "no mail host of stsgone.test has an address: nowhere.stsgone.test does not exist"
    )
    assert await MtaStsPolicyRecord.filter(domain="stsgone.test").count() == 1
    assert (await message_queries.list_page(SENDER, INBOX)).messages == []
