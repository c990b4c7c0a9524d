"""Where mail for a domain goes: its MX hosts in order, and their addresses (RFC 5321 section 5.1).

The questions go through ``store/dns_lookup.py`` with the resolver the worker
built for ``MAILCUE_DNS_RESOLVER``, never the system's ``getaddrinfo``, so the
answers are the ones our DNS checks see. What is left here is the routing
decision: which answers fail a message for good, which only for now.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

import dns.asyncresolver

from mailcue_server.store import dns_lookup


@dataclass(frozen=True)
class MailHost:
    name: str
    preference: int


class RouteError(Exception):
    """The domain's mail hosts are unknown: for good (``permanent``) or for now."""

    def __init__(self, text: str, *, permanent: bool, status: str) -> None:
        super().__init__(text)
        self.text = text
        self.permanent = permanent
        self.status = status


async def mail_hosts(resolver: dns.asyncresolver.Resolver, domain: str) -> list[MailHost]:
    """The domain's MX hosts, most preferred first (equal preferences shuffled).

    Without MX records the domain itself is the mail host ("implicit MX") if it
    has an address.

    Raises:
        RouteError: The domain does not exist or publishes a null MX (permanent),
            or DNS did not answer (temporary).
    """
    mx = await dns_lookup.resolve(resolver, domain, "MX")
    if mx.nxdomain:
        raise RouteError(f"{domain} does not exist", permanent=True, status="5.1.2")
    if mx.no_answer:
        return await _implicit_mx(resolver, domain)
    if mx.error is not None:
        raise RouteError(
            f"DNS lookup of the MX of {domain} failed: {mx.error}", permanent=False, status="4.4.3"
        )
    found = dns_lookup.exchanges(mx)
    if dns_lookup.is_null_mx(found):
        raise RouteError(
            f"{domain} publishes a null MX: it accepts no mail (RFC 7505)",
            permanent=True,
            status="5.1.10",
        )
    shuffle = secrets.SystemRandom().shuffle
    ordered: list[MailHost] = []
    for preference, group in groupby(found, key=lambda exchange: exchange.preference):
        # A root target beside real ones is skipped; only root targets make a null MX.
        names = [host.removesuffix(".").lower() for _, host in group if host != "."]
        shuffle(names)  # RFC 5321 section 5.1: spread load over equal preferences
        ordered += [MailHost(name, preference) for name in names]
    return ordered


async def _implicit_mx(resolver: dns.asyncresolver.Resolver, domain: str) -> list[MailHost]:
    """The domain itself when it has an address; "no address" and "no answer" kept apart.

    ``host_addresses`` folds a failed lookup into "none", which here would bounce
    mail for good over a DNS hiccup; a failed lookup defers (RFC 3463 X.4.3).
    """
    a, aaaa = await asyncio.gather(
        dns_lookup.resolve(resolver, domain, "A"), dns_lookup.resolve(resolver, domain, "AAAA")
    )
    if a.rdata or aaaa.rdata:
        return [MailHost(domain, 0)]
    failure = a.error or aaaa.error
    if failure is not None:
        raise RouteError(
            f"DNS lookup of the address of {domain} failed: {failure}",
            permanent=False,
            status="4.4.3",
        )
    raise RouteError(f"{domain} has no MX, A or AAAA record", permanent=True, status="5.1.2")


@dataclass(frozen=True)
class HostAddresses:
    """A mail host's addresses (IPv4 first), or why it has none.

    ``nxdomain``: the name does not exist. ``error``: the lookup failed, so
    whether it has addresses is unknown. Neither: it exists without A/AAAA.
    """

    name: str
    addresses: tuple[str, ...] = ()
    nxdomain: bool = False
    error: str = ""

    @property
    def missing(self) -> str:
        """Why there is no address, for the diagnostic."""
        if self.error:
            return f"DNS lookup of the address of {self.name} failed: {self.error}"
        if self.nxdomain:
            return f"{self.name} does not exist"
        return f"{self.name} has no address"


async def host_addresses(resolver: dns.asyncresolver.Resolver, name: str) -> HostAddresses:
    """The A and AAAA addresses of a mail host, with "no such name" and "no answer" kept apart.

    ``dns_lookup.host_addresses`` folds every miss into "none"; the routing
    decision (:func:`unroutable`) needs to know which miss it was.
    """
    a, aaaa = await asyncio.gather(
        dns_lookup.resolve(resolver, name, "A"), dns_lookup.resolve(resolver, name, "AAAA")
    )
    addresses = tuple(str(rdata.address) for rdata in a.rdata + aaaa.rdata)
    if addresses:
        return HostAddresses(name, addresses)
    failure = a.error or aaaa.error
    if failure is not None:
        return HostAddresses(name, error=str(failure))
    return HostAddresses(name, nxdomain=a.nxdomain and aaaa.nxdomain)


def unroutable(domain: str, misses: Sequence[HostAddresses], *, every_host: bool) -> RouteError:
    """Why mail for ``domain`` has nowhere to go when none of its mail hosts has an address.

    RFC 3463 X.4.4, "unable to route". When no host name exists at all
    (NXDOMAIN for each) no retry will find one, so it is for good, as Postfix
    bounces it. A name that exists without addresses, or one whose lookup
    failed, may yet get them: that defers. ``every_host`` is False when an
    MTA-STS policy left some MX hosts out; the policy may change (RFC 8461
    section 5.1), so then it only defers.

    Args:
        domain: The recipient domain.
        misses: The lookup of each host tried, none with an address.
        every_host: Whether ``misses`` covers every MX host of the domain.
    """
    text = f"no mail host of {domain} has an address: " + "; ".join(m.missing for m in misses)
    if every_host and misses and all(miss.nxdomain for miss in misses):
        return RouteError(text, permanent=True, status="5.4.4")
    return RouteError(text, permanent=False, status="4.4.4")
