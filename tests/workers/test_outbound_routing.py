"""Where outbound mail for a domain goes (RFC 5321 section 5.1, RFC 7505 null MX).

``routing.mail_hosts`` is asked against dnsmasq serving the zone below, and
an :class:`OutboundWorker` delivers queued mail by the same answers, so the
outcome on the queue entry (delivered / pending and retried / failed and
bounced, with its enhanced status) is checked end to end. One case needs a
DNS server that fails one record type of a name and answers the others;
dnsmasq cannot say that, so :func:`scripted_dns` (dnspython over UDP, in
this module) plays it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any, cast

import dns.asyncresolver
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import pytest_asyncio
from outbound_rig import remote_smtp

from conftest import node_settings
from dns_server import dns_server
from mailcue_server.events.memory import MemoryBus
from mailcue_server.store import dns_lookup, mailboxes, message_queries, outbound, outbound_admin
from mailcue_server.store.db import Database
from mailcue_server.store.mail_models import INBOX
from mailcue_server.workers.outbound import OutboundWorker
from mailcue_server.workers.outbound.routing import MailHost, RouteError, mail_hosts

SENDER = "sender@local.test"
UNREACHABLE = "127.0.0.2"  # loopback, but our remote SMTP listens on 127.0.0.1 only
ZONE_MX = [
    # Listed out of order: the answer must come back sorted by preference.
    ("prefs.test", "third.prefs.test", 30),
    ("prefs.test", "tie-a.prefs.test", 10),
    ("prefs.test", "first.prefs.test", 5),
    ("prefs.test", "tie-b.prefs.test", 10),
    ("fallback.test", "down.fallback.test", 5),
    ("fallback.test", "up.fallback.test", 10),
    ("null.test", ".", 0),  # RFC 7505: "MX 0 ."
    ("mixed.test", ".", 0),  # a root target beside a real one is no null MX
    ("mixed.test", "mx.mixed.test", 10),
    ("ghost.test", "nowhere.ghost.test", 5),  # a host with no A/AAAA (NXDOMAIN)
    ("ghost.test", "mx.ghost.test", 10),
    ("lost.test", "nowhere.lost.test", 10),  # its only host has no address
    ("target.test", "mx.target.test", 10),
]
ZONE_HOSTS = {
    "implicit.test": ["127.0.0.1"],
    "v6only.test": ["::1"],
    "web.test": ["127.0.0.1"],
    "down.fallback.test": [UNREACHABLE],
    **{
        name: ["127.0.0.1"]
        for name in (
            "first.prefs.test",
            "tie-a.prefs.test",
            "tie-b.prefs.test",
            "third.prefs.test",
            "up.fallback.test",
            "mx.mixed.test",
            "mx.ghost.test",
            "mx.target.test",
        )
    },
}
ZONE_CNAMES = {
    "alias.test": "target.test",  # the domain is an alias of one with MX records
    "www-alias.test": "web.test",  # an alias of a name with only an A record
}
ZONE_TXT = {"txtonly.test": ["v=spf1 -all"]}  # exists, but no MX, A or AAAA


def _now() -> datetime:
    return datetime.now(UTC)


def _mail(subject: str, to: str) -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@local.test>\r\n\r\nHello.\r\n"
    ).encode()


def _resolver(address: str, timeout: float = 2.0) -> dns.asyncresolver.Resolver:
    host, _, port = address.rpartition(":")
    return dns_lookup.make_resolver((host, int(port)), timeout=timeout)


@pytest_asyncio.fixture(scope="module")
async def zone() -> AsyncIterator[str]:
    """dnsmasq serving the zone above; ``"127.0.0.1:PORT"``."""
    async with dns_server(mx=ZONE_MX, hosts=ZONE_HOSTS, cnames=ZONE_CNAMES, txt=ZONE_TXT) as at:
        yield at


@pytest.fixture
def resolver(zone: str) -> dns.asyncresolver.Resolver:
    return _resolver(zone)


# --- mail_hosts against dnsmasq ---------------------------------------------


async def test_mx_hosts_come_most_preferred_first_with_ties_in_both_orders(
    resolver: dns.asyncresolver.Resolver,
) -> None:
    hosts = await mail_hosts(resolver, "prefs.test")
    assert [host.preference for host in hosts] == [5, 10, 10, 30]
    assert hosts[0].name == "first.prefs.test"
    assert {host.name for host in hosts[1:3]} == {"tie-a.prefs.test", "tie-b.prefs.test"}
    assert hosts[3].name == "third.prefs.test"

    # RFC 5321 section 5.1: equal preferences are tried in random order (load spreading).
    # dnsmasq answers in one fixed order, so both orders showing up is the client's doing;
    # the chance of 64 equal draws from a fair shuffle is 2**-63.
    orders = set()
    for _ in range(64):
        orders.add(tuple(host.name for host in (await mail_hosts(resolver, "prefs.test"))[1:3]))
        if len(orders) == 2:
            break
    assert orders == {
        ("tie-a.prefs.test", "tie-b.prefs.test"),
        ("tie-b.prefs.test", "tie-a.prefs.test"),
    }


@pytest.mark.parametrize("domain", ["implicit.test", "v6only.test"])
async def test_a_domain_without_mx_but_with_an_address_is_its_own_mail_host(
    resolver: dns.asyncresolver.Resolver, domain: str
) -> None:
    # RFC 5321 section 5.1: no MX records -> the domain itself, preference 0 ("implicit MX").
    assert await mail_hosts(resolver, domain) == [MailHost(domain, 0)]


async def test_a_null_mx_fails_for_good_with_5_1_10(
    resolver: dns.asyncresolver.Resolver,
) -> None:
    with pytest.raises(RouteError) as caught:
        await mail_hosts(resolver, "null.test")
    # RFC 7505: no delivery attempt; the non-delivery report says 5.1.10.
    assert caught.value.permanent
    assert caught.value.status == "5.1.10"
    assert "null MX" in caught.value.text


async def test_a_root_target_beside_a_real_mx_is_skipped_not_taken_as_null_mx(
    resolver: dns.asyncresolver.Resolver,
) -> None:
    assert await mail_hosts(resolver, "mixed.test") == [MailHost("mx.mixed.test", 10)]


@pytest.mark.parametrize(
    ("domain", "why"),
    [
        ("gone.test", "gone.test does not exist"),  # NXDOMAIN
        ("txtonly.test", "txtonly.test has no MX, A or AAAA record"),  # exists, no route
    ],
)
async def test_a_domain_without_any_route_fails_for_good_with_5_1_2(
    resolver: dns.asyncresolver.Resolver, domain: str, why: str
) -> None:
    with pytest.raises(RouteError) as caught:
        await mail_hosts(resolver, domain)
    assert (caught.value.permanent, caught.value.status, caught.value.text) == (True, "5.1.2", why)


async def test_a_refusing_dns_server_is_a_temporary_4_4_3(zone: str) -> None:
    # dnsmasq has no upstream: a name outside its local zones gets REFUSED.
    with pytest.raises(RouteError) as caught:
        await mail_hosts(_resolver(zone), "far.example.org")
    assert (caught.value.permanent, caught.value.status) == (False, "4.4.3")
    assert "REFUSED" in caught.value.text


async def test_a_dns_server_that_never_answers_is_a_temporary_4_4_3() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, never read: queries time out
        port = silent.getsockname()[1]
        started = asyncio.get_running_loop().time()
        with pytest.raises(RouteError) as caught:
            await mail_hosts(_resolver(f"127.0.0.1:{port}", timeout=0.3), "ok.test")
        assert asyncio.get_running_loop().time() - started < 2
    assert (caught.value.permanent, caught.value.status) == (False, "4.4.3")


async def test_a_domain_that_is_a_cname_routes_by_its_targets_records(
    resolver: dns.asyncresolver.Resolver,
) -> None:
    # RFC 5321 section 5.1: "the resulting name is processed as if it were the initial name".
    assert await mail_hosts(resolver, "alias.test") == [MailHost("mx.target.test", 10)]
    # Without MX at the end of the chain the address of the target makes the implicit MX,
    # kept under the name the mail is addressed to.
    assert await mail_hosts(resolver, "www-alias.test") == [MailHost("www-alias.test", 0)]


async def test_mx_hosts_without_addresses_are_still_listed(
    resolver: dns.asyncresolver.Resolver,
) -> None:
    # Addresses are the delivery's business, host by host (see the end-to-end tests).
    assert await mail_hosts(resolver, "ghost.test") == [
        MailHost("nowhere.ghost.test", 5),
        MailHost("mx.ghost.test", 10),
    ]


# --- mail_hosts against a scripted server -------------------------------------

Reply = dns.rcode.Rcode | tuple[str, ...]  # an error rcode, or the records (empty: NODATA)


class _Scripted(asyncio.DatagramProtocol):
    def __init__(self, replies: Mapping[tuple[str, str], Reply]) -> None:
        self._replies = replies
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        key = (question.name.to_text(omit_final_dot=True), dns.rdatatype.to_text(question.rdtype))
        reply = dns.message.make_response(query)
        reply.flags |= dns.flags.AA
        found = self._replies.get(key, dns.rcode.NXDOMAIN)
        if isinstance(found, dns.rcode.Rcode):
            reply.set_rcode(found)
        elif found:
            rrset = dns.rrset.from_text_list(question.name, 60, "IN", question.rdtype, found)
            reply.answer.append(rrset)
        assert self._transport is not None
        self._transport.sendto(reply.to_wire(), addr)


@asynccontextmanager
async def scripted_dns(replies: Mapping[tuple[str, str], Reply]) -> AsyncIterator[str]:
    """A UDP DNS server answering ``(name, type)`` from ``replies`` (others: NXDOMAIN)."""
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _Scripted(replies), local_addr=("127.0.0.1", 0)
    )
    try:
        yield f"127.0.0.1:{transport.get_extra_info('sockname')[1]}"
    finally:
        transport.close()


async def test_implicit_mx_with_one_address_family_failing_uses_the_other() -> None:
    replies: dict[tuple[str, str], Reply] = {
        ("half.test", "MX"): (),
        ("half.test", "A"): ("127.0.0.1",),
        ("half.test", "AAAA"): dns.rcode.SERVFAIL,
    }
    async with scripted_dns(replies) as address:
        assert await mail_hosts(_resolver(address), "half.test") == [MailHost("half.test", 0)]


@pytest.mark.parametrize("failing", ["A", "AAAA"])
async def test_implicit_mx_whose_address_lookup_fails_is_temporary_not_a_bounce(
    failing: str,
) -> None:
    # The domain exists without MX; whether it has an address is unknown for now.
    # A DNS failure defers (RFC 3463 X.4.3); only "no such record" bounces (5.1.2).
    replies: dict[tuple[str, str], Reply] = {
        ("flaky.test", "MX"): (),
        ("flaky.test", "A"): (),
        ("flaky.test", "AAAA"): (),
    }
    replies[("flaky.test", failing)] = dns.rcode.SERVFAIL
    async with scripted_dns(replies) as address:
        with pytest.raises(RouteError) as caught:
            await mail_hosts(_resolver(address), "flaky.test")
    assert (caught.value.permanent, caught.value.status) == (False, "4.4.3")
    assert "MX" not in caught.value.text  # the MX question had its answer: there is none


# --- end to end through the outbound worker ----------------------------------


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite://{tmp_path / 'queue.db'}?journal_mode=WAL")
    await database.open()
    try:
        await database.migrate()
        yield database
    finally:
        await database.close()


@pytest_asyncio.fixture
async def bus() -> AsyncIterator[MemoryBus]:
    events = MemoryBus()
    yield events
    await events.close()


@pytest.fixture
def make_worker(tmp_path: Path, zone: str, bus: MemoryBus) -> Callable[..., OutboundWorker]:
    def build(**overrides: Any) -> OutboundWorker:
        values: dict[str, Any] = {
            "dns_resolver": zone,
            "outbound_timeout": 5.0,
            "outbound_poll_interval": 5.0,
            "hostname": "mail.local.test",
        }
        values.update(overrides)
        return OutboundWorker(node_settings(tmp_path / "node", **values), bus=bus)

    return build


def _by_address(entry: outbound_admin.QueueEntry) -> dict[str, outbound.RecipientReport]:
    return {recipient.address: recipient for recipient in entry.recipients}


def _status_blocks(raw: bytes) -> Iterator[Any]:
    """The per-recipient blocks of a DSN's message/delivery-status part."""
    dsn: Any = message_from_bytes(raw, policy=policy.default)
    _, status, _ = dsn.get_payload()
    yield from status.get_payload()[1:]


async def test_each_route_delivers_to_the_host_dns_names(
    db: Database, make_worker: Callable[..., OutboundWorker]
) -> None:
    recipients = ["eve@fallback.test", "frank@implicit.test", "gina@alias.test"]
    async with remote_smtp() as remote:
        worker = make_worker(outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(
            _mail("routes", ", ".join(recipients)), SENDER, recipients, now=_now()
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


async def test_a_null_mx_bounces_at_once_with_5_1_10_and_no_connection(
    db: Database, bus: MemoryBus, make_worker: Callable[..., OutboundWorker]
) -> None:
    await mailboxes.create_mailbox(SENDER, bus=bus)
    async with remote_smtp() as remote:
        worker = make_worker(outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(
            _mail("null mx", "carol@null.test"), SENDER, ["carol@null.test"], now=_now()
        )
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
    assert (block["Final-Recipient"], block["Action"]) == ("rfc822; carol@null.test", "failed")
    assert block["Status"] == "5.1.10"
    # Folded after the colon on the wire (the line is long); the parser keeps that space.
    diagnostic = block["Diagnostic-Code"].strip()
    assert diagnostic.startswith("X-MailCue; null.test publishes a null MX")
    assert block["Remote-MTA"] is None


async def test_unanswered_dns_keeps_the_message_queued_with_4_4_3(
    db: Database, bus: MemoryBus, make_worker: Callable[..., OutboundWorker]
) -> None:
    await mailboxes.create_mailbox(SENDER, bus=bus)
    async with remote_smtp() as remote:
        worker = make_worker(outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(
            _mail("no dns", "dan@far.example.org"), SENDER, ["dan@far.example.org"], now=_now()
        )
        await worker.run_once()
    assert remote.sessions == 0

    entry = await outbound_admin.get_entry(queue_id)
    assert entry.state == "queued"
    assert entry.next_attempt_at > _now()  # retried later, not bounced
    [recipient] = entry.recipients
    assert (recipient.state, recipient.smtp_code, recipient.status) == ("pending", 0, "4.4.3")
    assert "far.example.org" in recipient.diagnostic
    assert (await message_queries.list_page(SENDER, INBOX)).messages == []


async def test_an_mx_host_without_address_is_skipped_and_alone_it_defers(
    db: Database, make_worker: Callable[..., OutboundWorker]
) -> None:
    recipients = ["hal@ghost.test", "ida@lost.test"]
    async with remote_smtp() as remote:
        worker = make_worker(outbound_smtp_port=remote.port)
        queue_id = await outbound.enqueue(
            _mail("ghost hosts", ", ".join(recipients)), SENDER, recipients, now=_now()
        )
        await worker.run_once()

    assert [d.rcpt_tos for d in remote.received] == [["hal@ghost.test"]]
    entry = await outbound_admin.get_entry(queue_id)
    assert entry.state == "queued"  # one recipient is still pending
    reports = _by_address(entry)
    ghost, lost = reports["hal@ghost.test"], reports["ida@lost.test"]
    assert (ghost.state, ghost.remote_host) == ("delivered", "mx.ghost.test")
    # Its only MX has no address: tried again later (RFC 5321 section 5.1 calls the
    # domain unusable; it does not say for good), then bounced at the give-up deadline.
    assert (lost.state, lost.smtp_code, lost.status) == ("pending", 0, "4.4.1")
    assert lost.diagnostic == "nowhere.lost.test has no address"
