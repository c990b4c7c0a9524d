"""Where outbound mail for a domain goes (RFC 5321 section 5.1, RFC 7505 null MX):
``routing.mail_hosts`` asked against dnsmasq serving :mod:`routing_zone`, and
against :func:`scripted_dns.scripted_dns` where one record type of a name must
fail while the others answer (dnsmasq cannot say that). What the outbound
worker makes of the same answers is in ``test_outbound_routes.py``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import dns.asyncresolver
import dns.rcode
import pytest
import pytest_asyncio

from dns_server import dns_server
from mailcue_server.workers.outbound.routing import MailHost, RouteError, mail_hosts
from routing_zone import ZONE_CNAMES, ZONE_HOSTS, ZONE_MX, ZONE_TXT, resolver_at
from scripted_dns import Reply, scripted_dns


@pytest_asyncio.fixture(scope="module")
async def zone() -> AsyncIterator[str]:
    """dnsmasq serving the zone above; ``"127.0.0.1:PORT"``."""
    async with dns_server(mx=ZONE_MX, hosts=ZONE_HOSTS, cnames=ZONE_CNAMES, txt=ZONE_TXT) as at:
        yield at


@pytest.fixture
def resolver(zone: str) -> dns.asyncresolver.Resolver:
    return resolver_at(zone)


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


@pytest.mark.parametrize("domain", ["null.test", "allnull.test"])
async def test_a_null_mx_fails_for_good_with_5_1_10(
    resolver: dns.asyncresolver.Resolver, domain: str
) -> None:
    # "MX 0 ." alone (RFC 7505), or only root targets: no host to try either way,
    # and the domain's own address is no implicit MX (it has MX records).
    with pytest.raises(RouteError) as caught:
        await mail_hosts(resolver, domain)
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
        await mail_hosts(resolver_at(zone), "far.example.org")
    assert (caught.value.permanent, caught.value.status) == (False, "4.4.3")
    assert "REFUSED" in caught.value.text


async def test_a_dns_server_that_never_answers_is_a_temporary_4_4_3() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))  # bound, never read: queries time out
        port = silent.getsockname()[1]
        started = asyncio.get_running_loop().time()
        with pytest.raises(RouteError) as caught:
            await mail_hosts(resolver_at(f"127.0.0.1:{port}", timeout=0.3), "ok.test")
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


async def test_implicit_mx_with_one_address_family_failing_uses_the_other() -> None:
    replies: dict[tuple[str, str], Reply] = {
        ("half.test", "MX"): (),
        ("half.test", "A"): ("127.0.0.1",),
        ("half.test", "AAAA"): dns.rcode.SERVFAIL,
    }
    async with scripted_dns(replies) as address:
        assert await mail_hosts(resolver_at(address), "half.test") == [MailHost("half.test", 0)]


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
            await mail_hosts(resolver_at(address), "flaky.test")
    assert (caught.value.permanent, caught.value.status) == (False, "4.4.3")
    assert "MX" not in caught.value.text  # the MX question had its answer: there is none
