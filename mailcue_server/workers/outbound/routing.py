"""Where mail for a domain goes: its MX hosts in order, and their addresses (RFC 5321 section 5.1).

Asked with dnspython's async resolver against ``MAILCUE_DNS_RESOLVER``, never
the system's ``getaddrinfo``, so the answers are the ones our DNS checks see.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from itertools import groupby

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver


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
    try:
        answer = await resolver.resolve(dns.name.from_text(domain), "MX", search=False)
    except dns.resolver.NXDOMAIN:
        raise RouteError(f"{domain} does not exist", permanent=True, status="5.1.2") from None
    except dns.resolver.NoAnswer:
        if await addresses(resolver, domain):
            return [MailHost(domain, 0)]
        raise RouteError(
            f"{domain} has no MX, A or AAAA record", permanent=True, status="5.1.2"
        ) from None
    except dns.exception.DNSException as exc:
        raise RouteError(
            f"DNS lookup of the MX of {domain} failed: {exc}", permanent=False, status="4.4.3"
        ) from None
    records = sorted(
        (int(rdata.preference), rdata.exchange.to_text(omit_final_dot=True).lower())
        for rdata in answer
    )
    if len(records) == 1 and records[0][1] in ("", "."):
        raise RouteError(
            f"{domain} publishes a null MX: it accepts no mail (RFC 7505)",
            permanent=True,
            status="5.1.10",
        )
    shuffle = secrets.SystemRandom().shuffle
    ordered: list[MailHost] = []
    for preference, group in groupby(records, key=lambda record: record[0]):
        names = [name for _, name in group if name not in ("", ".")]
        shuffle(names)  # RFC 5321 section 5.1: spread load over equal preferences
        ordered += [MailHost(name, preference) for name in names]
    return ordered


async def addresses(resolver: dns.asyncresolver.Resolver, host: str) -> list[str]:
    """A and AAAA addresses of a host (IPv4 first); empty when it has none or DNS failed."""
    found = await asyncio.gather(_records(resolver, host, "A"), _records(resolver, host, "AAAA"))
    return [address for answer in found for address in answer]


async def _records(resolver: dns.asyncresolver.Resolver, host: str, rdtype: str) -> list[str]:
    try:
        answer = await resolver.resolve(dns.name.from_text(host), rdtype, search=False)
    except dns.exception.DNSException:
        return []
    wanted = dns.rdatatype.from_text(rdtype)
    return [
        str(rdata) for rrset in answer.response.answer if rrset.rdtype == wanted for rdata in rrset
    ]
