"""Where mail for a domain goes: its MX hosts in order, and their addresses (RFC 5321 section 5.1).

The questions go through ``store/dns_lookup.py`` with the resolver the worker
built for ``MAILCUE_DNS_RESOLVER``, never the system's ``getaddrinfo``, so the
answers are the ones our DNS checks see. What is left here is the routing
decision: which answers fail a message for good, which only for now.
"""

from __future__ import annotations

import asyncio
import secrets
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
        # A root target beside real ones is skipped; only a lone one is a null MX.
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
