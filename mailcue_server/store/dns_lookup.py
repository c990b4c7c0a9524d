"""Live DNS lookups, with dnspython's async resolver: the project's one way to ask DNS.

Beside the store because resolvers and workers both need it: the verify-dns
resolver and the periodic worker (domain checks), inbound SPF/DKIM/DMARC,
outbound delivery and address validation. :func:`resolve` asks one question
and keeps "no such name", "no such record" and "no answer known" apart;
:func:`query` turns that into a :class:`~mailcue_server.mail.dns_records.Lookup`
that the pure judge reads, and the mail-routing helpers read MX and A/AAAA
records the way RFC 5321 section 5.1 needs them.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, NamedTuple

import dns.asyncresolver
import dns.exception
import dns.name
import dns.rdatatype
import dns.resolver

from mailcue_server.mail.dns_records import (
    Answers,
    DomainDns,
    ExpectedRecord,
    Lookup,
    RecordKey,
    Verdict,
    expected_records,
    judge,
)

TIMEOUT = 3.0  # seconds per server try
LIFETIME = 6.0  # seconds for one question, retries included


def make_resolver(
    nameserver: tuple[str, int] | None, timeout: float | None = None
) -> dns.asyncresolver.Resolver:
    """A resolver asking ``(ip, port)``, or the system's (``/etc/resolv.conf``) for ``None``.

    Args:
        nameserver: The DNS server, or None for the system's.
        timeout: Seconds for one question, retries included; None keeps
            :data:`TIMEOUT` per try and :data:`LIFETIME` per question.

    Raises:
        dns.resolver.NoResolverConfiguration: no nameserver given and none configured.
    """
    resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        resolver.nameservers = [nameserver[0]]
        resolver.port = nameserver[1]
    resolver.timeout = TIMEOUT if timeout is None else timeout
    resolver.lifetime = LIFETIME if timeout is None else timeout
    return resolver


@dataclass(frozen=True)
class Records:
    """One question's records of the type asked, or why there are none.

    ``nxdomain``: the name does not exist. ``no_answer``: it exists without
    records of that type. ``error``: no answer is known (timeout, server
    failure), as opposed to "no such record".
    """

    rdata: tuple[Any, ...] = ()
    nxdomain: bool = False
    no_answer: bool = False
    error: dns.exception.DNSException | None = None


async def resolve(resolver: dns.asyncresolver.Resolver, name: str, rdtype: str) -> Records:
    """Ask one question (absolute name, no search list); never raises for DNS failures."""
    try:
        answer = await resolver.resolve(dns.name.from_text(name), rdtype, search=False)
    except dns.resolver.NXDOMAIN:
        return Records(nxdomain=True)
    except dns.resolver.NoAnswer:
        return Records(no_answer=True)
    except dns.exception.DNSException as exc:
        return Records(error=exc)
    # dnspython's rrset is the one the question (after its CNAME chain) names: records
    # a server added for other names in the same answer section are not ours to use.
    return Records(rdata=tuple(answer.rrset) if answer.rrset is not None else ())


def _text(rdtype: str, rdata: object) -> str:
    if rdtype == "TXT":
        strings: tuple[bytes, ...] = getattr(rdata, "strings", ())
        return b"".join(strings).decode("utf-8", "replace")
    if rdtype == "MX":
        exchange: dns.name.Name = getattr(rdata, "exchange", dns.name.root)
        host = "." if exchange == dns.name.root else exchange.to_text(omit_final_dot=True)
        return f"{getattr(rdata, 'preference', 0)} {host}"
    if rdtype == "CNAME":
        target: dns.name.Name = getattr(rdata, "target", dns.name.root)
        return target.to_text(omit_final_dot=True)
    return str(rdata)


async def query(resolver: dns.asyncresolver.Resolver, name: str, rdtype: str) -> Lookup:
    """One question as text; "no such record" and "no answer known" come back apart."""
    found = await resolve(resolver, name, rdtype)
    if found.nxdomain:
        return Lookup(missing=f"{name} does not exist")
    if found.no_answer:
        return Lookup(missing=f"{name} has no {rdtype} record")
    if isinstance(found.error, dns.exception.Timeout):
        return Lookup(error=f"no answer for {name} {rdtype} in time")
    if isinstance(found.error, dns.resolver.NoNameservers):
        return Lookup(error=f"the DNS server failed to answer {name} {rdtype}")
    if found.error is not None:
        return Lookup(error=f"{name} {rdtype}: {found.error}")
    return Lookup(values=tuple(_text(rdtype, rdata) for rdata in found.rdata))


class Exchange(NamedTuple):
    """One MX record; sorts by preference, then host."""

    preference: int
    host: str  # absolute, with its final dot; "." for a null MX


def exchanges(mx: Records) -> list[Exchange]:
    """The MX records of an answer, most preferred first."""
    return sorted(Exchange(int(rdata.preference), rdata.exchange.to_text()) for rdata in mx.rdata)


def is_null_mx(found: list[Exchange]) -> bool:
    """RFC 7505: MX records that all name the root say the domain accepts no mail.

    The RFC's null MX is a single ``MX 0 .``; several root records (``MX 0 .``
    plus ``MX 10 .``) break its "no other MX" rule but leave no host to try, and
    the domain has MX records, so its own address is no implicit MX either
    (RFC 5321 section 5.1). A root record beside a real host is not one.
    """
    return bool(found) and all(exchange.host == "." for exchange in found)


async def host_addresses(resolver: dns.asyncresolver.Resolver, host: str) -> list[str]:
    """A and AAAA addresses of a host (IPv4 first); empty when it has none or DNS failed."""
    a, aaaa = await asyncio.gather(resolve(resolver, host, "A"), resolve(resolver, host, "AAAA"))
    return [str(rdata.address) for rdata in a.rdata + aaaa.rdata]


async def _host(resolver: dns.asyncresolver.Resolver, name: str) -> Lookup:
    """A host name: its CNAME target (if any) and the addresses it ends at."""
    cname, a, aaaa = await asyncio.gather(
        query(resolver, name, "CNAME"), query(resolver, name, "A"), query(resolver, name, "AAAA")
    )
    addresses = a.values + aaaa.values
    if not addresses and not cname.values:
        error = a.error or cname.error
        return Lookup(error=error, missing=a.missing)
    return Lookup(values=cname.values, addresses=addresses)


async def lookup_answers(spec: DomainDns, resolver: dns.asyncresolver.Resolver) -> Answers:
    """Ask every question a domain check needs, all at once."""
    domain = spec.domain
    txt_names = {
        RecordKey.SPF: domain,
        RecordKey.DKIM: f"{spec.dkim_selector}._domainkey.{domain}",
        RecordKey.DMARC: f"_dmarc.{domain}",
        RecordKey.MTA_STS: f"_mta-sts.{domain}",
        RecordKey.TLS_RPT: f"_smtp._tls.{domain}",
    }
    keys = list(txt_names)
    results = await asyncio.gather(
        query(resolver, domain, "MX"),
        _host(resolver, f"mta-sts.{domain}"),
        _host(resolver, spec.mail_host),
        *(query(resolver, txt_names[key], "TXT") for key in keys),
    )
    mx, mta_sts_host, mail_host = results[0], results[1], results[2]
    by_key = {RecordKey.MX: mx, RecordKey.MTA_STS_HOST: mta_sts_host}
    by_key.update(zip(keys, results[3:], strict=True))
    return Answers(
        mail_host=spec.mail_host, by_key=by_key, mail_host_addresses=mail_host.addresses
    )


async def check_domain(
    spec: DomainDns, nameserver: tuple[str, int] | None
) -> list[tuple[ExpectedRecord, Verdict]]:
    """Each expected record of the domain with the verdict on what DNS publishes now."""
    records = expected_records(spec)
    try:
        resolver = make_resolver(nameserver)
    except dns.exception.DNSException as exc:
        failed = Verdict(False, None, f"No DNS resolver is configured: {exc}")
        return [(record, failed) for record in records]
    answers = await lookup_answers(spec, resolver)
    return [(record, judge(record, answers)) for record in records]
