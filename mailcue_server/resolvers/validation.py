"""Validating an address: syntax, the domain's DNS, an SMTP recipient probe, disposable list.

The probe speaks EHLO, MAIL FROM, RCPT TO (plus one made-up recipient to
spot catch-all servers) and QUIT, never DATA, so nothing is ever delivered.
Every network step has ``MAILCUE_VALIDATION_TIMEOUT``: DNS takes at most one
such step, finding the MX's address one more, and the SMTP conversation two,
so a call never lasts much longer than four steps.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiosmtplib
import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver

from mailcue_server.config import Settings
from mailcue_server.mail.validation import (
    DomainState,
    RcptReply,
    RcptState,
    Syntax,
    check_syntax,
    enhanced_status,
    is_disposable,
    judge,
    may_probe,
    read_rcpt_reply,
)
from mailcue_server.resolvers.context import Context
from mailcue_server.schema.types.validation import (
    ControlProbeVerdict,
    DnsStatus,
    EmailValidationControlProbe,
    EmailValidationDisposable,
    EmailValidationDns,
    EmailValidationMailbox,
    EmailValidationResponse,
    EmailValidationSyntax,
    ProbeTransport,
    ValidationStatus,
    ValidationVerdict,
)

NOT_CHECKED = "Not checked: the address is not valid"
QUIT_TIMEOUT = 1.0
SMTP_STEPS = 2  # the whole SMTP conversation may take this many timeouts


async def validate_email(ctx: Context, email: str) -> EmailValidationResponse:
    """Check one address for the caller.

    Raises:
        Unauthenticated: no credentials.
        MissingScope: an API key without ``email:read``.
    """
    ctx.require_principal().require_scope("email:read")
    return await check_address(ctx.settings, email)


async def check_address(settings: Settings, email: str) -> EmailValidationResponse:
    """Run every check that applies and combine them into one answer."""
    syntax = check_syntax(email.strip())
    mailbox = EmailValidationMailbox(reason_code="skipped", error=NOT_CHECKED)
    if syntax.is_valid and syntax.ascii_domain:
        disposable = EmailValidationDisposable(is_disposable=is_disposable(syntax.ascii_domain))
        lookup = await _look_up_domain(settings, syntax.ascii_domain)
        if lookup.state is DomainState.ACCEPTS_MAIL:
            mailbox = await _probe_best_mx(settings, lookup, syntax)
        else:
            mailbox.error = "Not checked: DNS named no mail host for the domain"
    else:
        disposable = EmailValidationDisposable(is_disposable=False, error=NOT_CHECKED)
        lookup = _DomainLookup(DomainState.SKIPPED, _skipped_dns())
    verdict = judge(
        syntax,
        domain=lookup.state,
        domain_error=lookup.report.error,
        rcpt=_rcpt_state(mailbox),
        rcpt_detail=_rcpt_detail(mailbox),
        catch_all=mailbox.catch_all,
        disposable=disposable.is_disposable,
    )
    return EmailValidationResponse(
        email=email,
        is_valid=verdict.is_valid,
        status=ValidationStatus(verdict.status),
        verdict=ValidationVerdict(verdict.verdict),
        deliverable=verdict.deliverable,
        confidence=verdict.confidence,
        reason=verdict.reason,
        syntax=EmailValidationSyntax(
            is_valid=syntax.is_valid,
            local_part=syntax.local_part,
            domain=syntax.domain,
            error=syntax.error,
        ),
        dns=lookup.report,
        mailbox=mailbox,
        disposable=disposable,
    )


def _skipped_dns() -> EmailValidationDns:
    return EmailValidationDns(
        is_valid=False,
        has_mx=False,
        has_ns=False,
        has_a=False,
        status=DnsStatus.UNDETERMINED,
        error_code="skipped",
        error=NOT_CHECKED,
    )


def _rcpt_state(mailbox: EmailValidationMailbox) -> RcptState:
    if mailbox.is_valid is True:
        return RcptState.ACCEPTED
    if mailbox.is_valid is False:
        return RcptState.REJECTED
    return RcptState.SKIPPED if mailbox.reason_code == "skipped" else RcptState.UNKNOWN


def _rcpt_detail(mailbox: EmailValidationMailbox) -> str | None:
    if mailbox.smtp_code is not None:
        return f"{mailbox.smtp_code} {mailbox.smtp_response or ''}".strip()
    return mailbox.error


# --- DNS -------------------------------------------------------------------------------


@dataclass
class _Answer:
    """One DNS query's outcome: records, or NXDOMAIN, or an error code and message."""

    records: list[Any] = field(default_factory=list)
    nxdomain: bool = False
    error_code: str | None = None
    error: str | None = None


@dataclass
class _DomainLookup:
    state: DomainState
    report: EmailValidationDns
    mail_hosts: list[str] = field(default_factory=list)  # best first
    implicit_addresses: list[str] = field(default_factory=list)  # when the domain is its MX
    resolver: dns.asyncresolver.Resolver | None = None


def _build_resolver(settings: Settings) -> dns.asyncresolver.Resolver:
    """The configured DNS server, or the system's (raises NoResolverConfiguration)."""
    nameserver = settings.dns_nameserver
    resolver = dns.asyncresolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        resolver.nameservers = [nameserver[0]]
        resolver.port = nameserver[1]
    resolver.timeout = resolver.lifetime = settings.validation_timeout
    return resolver


async def _query(resolver: dns.asyncresolver.Resolver, name: str, rdtype: str) -> _Answer:
    try:
        answer = await resolver.resolve(dns.name.from_text(name), rdtype, search=False)
    except dns.resolver.NXDOMAIN:
        return _Answer(nxdomain=True)
    except dns.resolver.NoAnswer:
        return _Answer()
    except dns.exception.Timeout:
        return _Answer(error_code="timeout", error=f"The DNS lookup of {name} timed out")
    except dns.exception.DNSException as exc:
        return _Answer(error_code="dns_error", error=f"The DNS lookup of {name} failed: {exc}")
    return _Answer(records=list(answer))


async def _look_up_domain(settings: Settings, domain: str) -> _DomainLookup:
    """MX, A, AAAA and NS of the domain, queried together, then RFC 5321 section 5.1 rules."""
    try:
        resolver = _build_resolver(settings)
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
        return _DomainLookup(DomainState.UNKNOWN, report)
    mx, a, aaaa, ns = await asyncio.gather(
        *(_query(resolver, domain, rdtype) for rdtype in ("MX", "A", "AAAA", "NS"))
    )
    exchanges = sorted((rr.preference, rr.exchange.to_text()) for rr in mx.records)
    report = EmailValidationDns(
        is_valid=False,
        has_mx=bool(exchanges),
        has_ns=bool(ns.records),
        has_a=bool(a.records),
        has_aaaa=bool(aaaa.records),
        null_mx=len(exchanges) == 1 and exchanges[0][1] == ".",
        mx_records=[f"{preference} {host}" for preference, host in exchanges],
        ns_records=[rr.target.to_text() for rr in ns.records],
        a_records=[rr.address for rr in a.records],
        aaaa_records=[rr.address for rr in aaaa.records],
    )
    lookup = _DomainLookup(DomainState.NO_MAIL, report, resolver=resolver)
    if not exchanges and (mx.nxdomain or a.nxdomain or aaaa.nxdomain):
        _fail(lookup, "nxdomain", f"The domain {domain} does not exist (NXDOMAIN)")
    elif report.null_mx:
        _fail(lookup, "null_mx", f"{domain} publishes a null MX: it accepts no mail (RFC 7505)")
    elif hosts := [host for _, host in exchanges if host != "."]:
        lookup.mail_hosts = hosts
        _accept(lookup)
    elif mx.error_code:
        _fail(lookup, mx.error_code, mx.error, state=DomainState.UNKNOWN)
    elif report.a_records or report.aaaa_records:
        # No MX: the domain itself is the mail host (RFC 5321 section 5.1, "implicit MX").
        lookup.mail_hosts = [f"{domain}."]
        lookup.implicit_addresses = report.a_records + report.aaaa_records
        _accept(lookup)
    elif failed := next((x for x in (a, aaaa) if x.error_code), None):
        _fail(lookup, failed.error_code or "dns_error", failed.error, state=DomainState.UNKNOWN)
    else:
        _fail(lookup, "no_mail_host", f"{domain} has no MX, A or AAAA record")
    return lookup


def _accept(lookup: _DomainLookup) -> None:
    lookup.state = DomainState.ACCEPTS_MAIL
    lookup.report.is_valid = True
    lookup.report.status = DnsStatus.VALID


def _fail(
    lookup: _DomainLookup,
    code: str,
    message: str | None,
    state: DomainState = DomainState.NO_MAIL,
) -> None:
    lookup.state = state
    lookup.report.error_code = code
    lookup.report.error = message
    lookup.report.status = (
        DnsStatus.UNDETERMINED if state is DomainState.UNKNOWN else DnsStatus.INVALID
    )


async def _first_address(lookup: _DomainLookup) -> tuple[str, str] | None:
    """The best mail host that has an address, and that address (IPv4 first)."""
    if lookup.implicit_addresses:
        return lookup.mail_hosts[0], lookup.implicit_addresses[0]
    resolver = lookup.resolver
    if resolver is None:  # only lookups that found no mail host lack one
        return None
    for host in lookup.mail_hosts:
        a, aaaa = await asyncio.gather(_query(resolver, host, "A"), _query(resolver, host, "AAAA"))
        addresses = [rr.address for rr in a.records + aaaa.records]
        if addresses:
            return host, addresses[0]
    return None


# --- SMTP probe ------------------------------------------------------------------------


async def _probe_best_mx(
    settings: Settings, lookup: _DomainLookup, syntax: Syntax
) -> EmailValidationMailbox:
    found = None
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(settings.validation_timeout):
            found = await _first_address(lookup)
    if found is None:
        return EmailValidationMailbox(
            reason_code="no_mail_host",
            mx_host=lookup.mail_hosts[0],
            error="No mail host of the domain has an IP address",
        )
    host, ip = found
    if not may_probe(ip, trust_private=settings.dns_nameserver is not None):
        return EmailValidationMailbox(
            reason_code="skipped",
            mx_host=host,
            error=f"Not probed: {ip} is not a public address "
            "(set MAILCUE_DNS_RESOLVER to trust internal names)",
        )
    return await _Probe(settings, host, ip).run(syntax)


_CONTROL_VERDICTS = {
    RcptReply.ACCEPTED: ControlProbeVerdict.MAILBOX_PRESENT,
    RcptReply.TEMPORARY: ControlProbeVerdict.TEMPORARY,
    RcptReply.POLICY: ControlProbeVerdict.POLICY,
    RcptReply.REJECTED: ControlProbeVerdict.MAILBOX_ABSENT,
}
_UNCLEAR_REPLIES = {
    RcptReply.TEMPORARY: "The mail server deferred the recipient (try later)",
    RcptReply.POLICY: "The mail server refused the probe by policy",
}


class _Probe:
    """One SMTP conversation with a deadline; fills the report as it learns things."""

    def __init__(self, settings: Settings, host: str, ip: str) -> None:
        self.timeout = settings.validation_timeout
        self.sender = settings.effective_validation_mail_from
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + SMTP_STEPS * self.timeout
        self.smtp = aiosmtplib.SMTP(
            hostname=ip,
            port=settings.validation_smtp_port,
            local_hostname=settings.effective_validation_helo,
            timeout=self.timeout,
            start_tls=False,
        )
        self.report = EmailValidationMailbox(mx_host=host)

    def budget(self) -> float:
        """Seconds the next step may take: one timeout, or what is left of the deadline."""
        left = self.deadline - self.loop.time()
        if left <= 0:
            raise TimeoutError
        return min(self.timeout, left)

    async def run(self, syntax: Syntax) -> EmailValidationMailbox:
        report = self.report
        try:
            await self._converse(syntax)
        except TimeoutError:
            self._unknown("timeout", "The mail server did not answer in time")
        except aiosmtplib.SMTPResponseException as exc:
            report.smtp_code, report.smtp_response = exc.code, exc.message
            self._unknown("refused", f"The mail server refused the connection: {exc.message}")
        except OSError as exc:  # includes aiosmtplib.SMTPConnectError
            self._unknown("unreachable", f"Could not connect to the mail server: {exc}")
        except aiosmtplib.SMTPException as exc:
            self._unknown("protocol_error", f"The SMTP conversation failed: {exc}")
        finally:
            await self._close()
        return report

    def _unknown(self, code: str, message: str) -> None:
        if self.report.reason_code is None:  # keep what RCPT already established
            self.report.reason_code, self.report.error = code, message

    async def _converse(self, syntax: Syntax) -> None:
        smtp, report = self.smtp, self.report
        await smtp.connect(timeout=self.budget())
        report.transport = ProbeTransport.DIRECT
        try:
            await smtp.ehlo(timeout=self.budget())
        except aiosmtplib.SMTPHeloError:
            await smtp.helo(timeout=self.budget())
        utf8 = not syntax.smtp_address.isascii()
        if utf8 and not smtp.supports_extension("smtputf8"):
            self._unknown(
                "protocol_error", "The mail server lacks SMTPUTF8, which this address needs"
            )
            return
        options = ["SMTPUTF8"] if utf8 else []
        try:
            await smtp.mail(self.sender, options=options, timeout=self.budget())
        except aiosmtplib.SMTPSenderRefused as exc:
            report.smtp_code, report.smtp_response = exc.code, exc.message
            report.enhanced_status = enhanced_status(exc.message)
            self._unknown("sender_rejected", "The mail server refused the probe's sender")
            return
        code, message, latency = await self._rcpt(syntax.smtp_address, utf8)
        report.smtp_code, report.smtp_response = code, message
        report.enhanced_status = enhanced_status(message)
        report.target_latency_ms = latency
        self._classify_target(code, message)
        if report.is_valid and syntax.ascii_domain:
            await self._control(f"mailcue-probe-{secrets.token_hex(6)}@{syntax.ascii_domain}")

    async def _rcpt(self, address: str, utf8: bool) -> tuple[int, str, float]:
        """RCPT TO; a refusal is an answer here, not an error."""
        started = self.loop.time()
        encoding = "utf-8" if utf8 else "ascii"
        try:
            reply = await self.smtp.rcpt(address, encoding=encoding, timeout=self.budget())
            code, message = reply.code, reply.message
        except aiosmtplib.SMTPRecipientRefused as exc:
            code, message = exc.code, exc.message
        return code, message, round((self.loop.time() - started) * 1000, 1)

    def _classify_target(self, code: int, message: str) -> None:
        reply = read_rcpt_reply(code, message)
        if reply in _UNCLEAR_REPLIES:
            self._unknown(reply.value, _UNCLEAR_REPLIES[reply])
        else:
            self.report.is_valid = reply is RcptReply.ACCEPTED
            self.report.reason_code = reply.value

    async def _control(self, address: str) -> None:
        """Ask for a recipient that cannot exist: accepted means a catch-all server."""
        report = self.report
        try:
            code, message, latency = await self._rcpt(address, utf8=False)
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            report.control_probes.append(
                EmailValidationControlProbe(shape="random", verdict=ControlProbeVerdict.UNKNOWN)
            )
            report.controls_inconclusive = 1
            return
        verdict = _CONTROL_VERDICTS[read_rcpt_reply(code, message)]
        report.control_probes.append(
            EmailValidationControlProbe(
                shape="random",
                verdict=verdict,
                smtp_code=code,
                smtp_response=message,
                latency_ms=latency,
            )
        )
        report.control_median_latency_ms = latency
        if verdict is ControlProbeVerdict.MAILBOX_PRESENT:
            report.controls_accepted, report.catch_all = 1, True
            report.selective_recipient_validation = False
        elif verdict is ControlProbeVerdict.MAILBOX_ABSENT:
            report.controls_rejected, report.catch_all = 1, False
            report.selective_recipient_validation = True
        else:
            report.controls_inconclusive = 1

    async def _close(self) -> None:
        """QUIT politely but briefly; drop the connection whatever happens."""
        if self.smtp.is_connected:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
                await self.smtp.quit(timeout=min(QUIT_TIMEOUT, self.timeout))
        self.smtp.close()
