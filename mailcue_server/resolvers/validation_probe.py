"""The SMTP half of address validation: ask the domain's mail host about one recipient.

The probe speaks EHLO, MAIL FROM, RCPT TO (plus one made-up recipient to
spot catch-all servers) and QUIT, never DATA, so nothing is ever delivered.
Finding the mail host's address may take one ``MAILCUE_VALIDATION_TIMEOUT``
and the SMTP conversation two.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import aiosmtplib

from mailcue_server.config import Settings
from mailcue_server.mail.validation import (
    RcptReply,
    Syntax,
    enhanced_status,
    may_probe,
    read_rcpt_reply,
)
from mailcue_server.resolvers.validation_dns import DomainLookup, first_address
from mailcue_server.schema.types.validation import (
    ControlProbeVerdict,
    EmailValidationControlProbe,
    EmailValidationMailbox,
    ProbeTransport,
)

QUIT_TIMEOUT = 1.0
SMTP_STEPS = 2  # the whole SMTP conversation may take this many timeouts


async def probe_best_mx(
    settings: Settings, lookup: DomainLookup, syntax: Syntax
) -> EmailValidationMailbox:
    """Probe the best mail host of the domain that has an address, if it may be probed."""
    found = None
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(settings.validation_timeout):
            found = await first_address(lookup)
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
