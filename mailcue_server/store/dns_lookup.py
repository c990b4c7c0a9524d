"""Live DNS lookups for domain checks, with dnspython's async resolver.

Beside the store because both callers of a domain check need it: the
verify-dns resolver and the periodic worker, which may not import resolvers.
The questions are asked concurrently; each answer becomes a
:class:`~mailcue_server.mail.dns_records.Lookup` that the pure judge reads.
"""

from __future__ import annotations

import asyncio

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


def make_resolver(nameserver: tuple[str, int] | None) -> dns.asyncresolver.Resolver:
    """A resolver asking ``(ip, port)``, or the system's (``/etc/resolv.conf``) for ``None``.

    Raises:
        dns.resolver.NoResolverConfiguration: no nameserver given and none configured.
    """
    resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        resolver.nameservers = [nameserver[0]]
        resolver.port = nameserver[1]
    resolver.timeout = TIMEOUT
    resolver.lifetime = LIFETIME
    return resolver


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
    """One question; "no such record" and "no answer known" come back apart."""
    try:
        answer = await resolver.resolve(dns.name.from_text(name), rdtype, search=False)
    except dns.resolver.NXDOMAIN:
        return Lookup(missing=f"{name} does not exist")
    except dns.resolver.NoAnswer:
        return Lookup(missing=f"{name} has no {rdtype} record")
    except dns.exception.Timeout:
        return Lookup(error=f"no answer for {name} {rdtype} in time")
    except dns.resolver.NoNameservers:
        return Lookup(error=f"the DNS server failed to answer {name} {rdtype}")
    except dns.exception.DNSException as exc:
        return Lookup(error=f"{name} {rdtype}: {exc}")
    # A CNAME chain is part of the answer; keep only the records of the type asked.
    wanted = dns.rdatatype.from_text(rdtype)
    values = tuple(
        _text(rdtype, rdata)
        for rrset in answer.response.answer
        if rrset.rdtype == wanted
        for rdata in rrset
    )
    return Lookup(values=values)


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
