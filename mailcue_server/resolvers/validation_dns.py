"""The DNS half of address validation: does the domain take mail, and at which host.

MX, A, AAAA and NS are asked together through :mod:`mailcue_server.store.dns_lookup`,
each question bounded by ``MAILCUE_VALIDATION_TIMEOUT``; RFC 5321 section 5.1
(implicit MX) and RFC 7505 (null MX) decide what they mean.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import dns.asyncresolver
import dns.exception

from mailcue_server.config import Settings
from mailcue_server.mail.validation import DomainState
from mailcue_server.schema.types.validation import DnsStatus, EmailValidationDns
from mailcue_server.store import dns_lookup
from mailcue_server.store.dns_lookup import Records


@dataclass
class DomainLookup:
    """What DNS said about the domain: the verdict, the report, and where to probe."""

    state: DomainState
    report: EmailValidationDns
    mail_hosts: list[str] = field(default_factory=list)  # best first
    implicit_addresses: list[str] = field(default_factory=list)  # when the domain is its MX
    resolver: dns.asyncresolver.Resolver | None = None


def _failure(found: Records, name: str) -> tuple[str, str] | None:
    """The report's error code and message when DNS gave no answer, else None."""
    if found.error is None:
        return None
    if isinstance(found.error, dns.exception.Timeout):
        return "timeout", f"The DNS lookup of {name} timed out"
    return "dns_error", f"The DNS lookup of {name} failed: {found.error}"


async def look_up_domain(settings: Settings, domain: str) -> DomainLookup:
    """MX, A, AAAA and NS of the domain, queried together, then RFC 5321 section 5.1 rules."""
    try:
        resolver = dns_lookup.make_resolver(settings.dns_nameserver, settings.validation_timeout)
    except dns.exception.DNSException as exc:
        report = EmailValidationDns(
            is_valid=False,
            has_mx=False,
            has_ns=False,
            has_a=False,
            status=DnsStatus.UNDETERMINED,
            error_code="dns_error",
            error=f"No DNS resolver is configured: {exc}",
        )
        return DomainLookup(DomainState.UNKNOWN, report)
    mx, a, aaaa, ns = await asyncio.gather(
        *(dns_lookup.resolve(resolver, domain, rdtype) for rdtype in ("MX", "A", "AAAA", "NS"))
    )
    exchanges = dns_lookup.exchanges(mx)
    report = EmailValidationDns(
        is_valid=False,
        has_mx=bool(exchanges),
        has_ns=bool(ns.rdata),
        has_a=bool(a.rdata),
        has_aaaa=bool(aaaa.rdata),
        null_mx=dns_lookup.is_null_mx(exchanges),
        mx_records=[f"{record.preference} {record.host}" for record in exchanges],
        ns_records=[rr.target.to_text() for rr in ns.rdata],
        a_records=[str(rr.address) for rr in a.rdata],
        aaaa_records=[str(rr.address) for rr in aaaa.rdata],
    )
    lookup = DomainLookup(DomainState.NO_MAIL, report, resolver=resolver)
    if not exchanges and (mx.nxdomain or a.nxdomain or aaaa.nxdomain):
        _fail(lookup, ("nxdomain", f"The domain {domain} does not exist (NXDOMAIN)"))
    elif report.null_mx:
        _fail(lookup, ("null_mx", f"{domain} publishes a null MX: it accepts no mail (RFC 7505)"))
    elif hosts := [record.host for record in exchanges if record.host != "."]:
        lookup.mail_hosts = hosts
        _accept(lookup)
    elif failed := _failure(mx, domain):
        _fail(lookup, failed, state=DomainState.UNKNOWN)
    elif report.a_records or report.aaaa_records:
        # No MX: the domain itself is the mail host (RFC 5321 section 5.1, "implicit MX").
        lookup.mail_hosts = [f"{domain}."]
        lookup.implicit_addresses = report.a_records + report.aaaa_records
        _accept(lookup)
    elif failed := _failure(a, domain) or _failure(aaaa, domain):
        _fail(lookup, failed, state=DomainState.UNKNOWN)
    else:
        _fail(lookup, ("no_mail_host", f"{domain} has no MX, A or AAAA record"))
    return lookup


def _accept(lookup: DomainLookup) -> None:
    lookup.state = DomainState.ACCEPTS_MAIL
    lookup.report.is_valid = True
    lookup.report.status = DnsStatus.VALID


def _fail(
    lookup: DomainLookup, error: tuple[str, str], state: DomainState = DomainState.NO_MAIL
) -> None:
    lookup.state = state
    lookup.report.error_code, lookup.report.error = error
    lookup.report.status = (
        DnsStatus.UNDETERMINED if state is DomainState.UNKNOWN else DnsStatus.INVALID
    )


async def first_address(lookup: DomainLookup) -> tuple[str, str] | None:
    """The best mail host that has an address, and that address (IPv4 first)."""
    if lookup.implicit_addresses:
        return lookup.mail_hosts[0], lookup.implicit_addresses[0]
    resolver = lookup.resolver
    if resolver is None:  # only lookups that found no mail host lack one
        return None
    for host in lookup.mail_hosts:
        if addresses := await dns_lookup.host_addresses(resolver, host):
            return host, addresses[0]
    return None
