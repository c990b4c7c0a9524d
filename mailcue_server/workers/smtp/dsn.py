"""RFC 3461 parameters on ``MAIL FROM`` and ``RCPT TO``: taken off before aiosmtpd reads them.

aiosmtpd refuses every parameter it does not know (555) and upper-cases the
rest, which would garble an ``ORCPT`` address. :class:`DsnCommands` removes
``RET``/``ENVID`` and ``NOTIFY``/``ORCPT`` from the command, lets aiosmtpd
and our handler judge what is left, and, when the command was accepted,
keeps the values on the transaction's :class:`DsnEnvelope`. A malformed
value is refused with 501 before anything else. The handler hands them to
the sink with the message (:func:`dsn_request_of`).
"""

from __future__ import annotations

from aiosmtpd.smtp import SMTP, Envelope, syntax

from mailcue_server.mail.dsn_params import (
    MAIL_KEYWORDS,
    RCPT_KEYWORDS,
    DsnParameterError,
    DsnRequest,
    RecipientDsn,
    Return,
    mail_parameters,
    rcpt_parameters,
    split_parameters,
)


class DsnEnvelope(Envelope):
    """aiosmtpd's envelope plus the DSN parameters of its accepted commands."""

    def __init__(self) -> None:
        super().__init__()
        self.dsn_ret: Return | None = None
        self.dsn_envid = ""
        self.dsn_recipients: dict[str, RecipientDsn] = {}

    def dsn_request(self) -> DsnRequest | None:
        """What the sender asked for, or None when it gave no DSN parameter at all."""
        if self.dsn_ret is None and not self.dsn_envid and not self.dsn_recipients:
            return None
        return DsnRequest(self.dsn_ret, self.dsn_envid, dict(self.dsn_recipients))


def dsn_request_of(envelope: Envelope) -> DsnRequest | None:
    return envelope.dsn_request() if isinstance(envelope, DsnEnvelope) else None


def take_parameters(arg: str, keywords: frozenset[str]) -> tuple[str, dict[str, str]]:
    """Split the named parameters off a ``FROM:<path> params`` argument.

    Only what follows the path's closing ``>`` is looked at; the path and
    every other parameter are passed on as written.

    Raises:
        DsnParameterError: A named parameter repeated or without a value.
    """
    start = arg.find("<")
    end = arg.find(">", start + 1) if start >= 0 else -1
    if end < 0:
        return arg, {}
    taken, rest = split_parameters(arg[end + 1 :].split(), keywords)
    return " ".join([arg[: end + 1], *rest]), taken


class DsnCommands(SMTP):
    """Mixed in before aiosmtpd's SMTP: ``MAIL`` and ``RCPT`` that understand RFC 3461."""

    def _create_envelope(self) -> Envelope:
        return DsnEnvelope()

    @syntax("MAIL FROM: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_MAIL(  # noqa: N802 - aiosmtpd dispatches commands by this name
        self, arg: str | None
    ) -> None:
        envelope = self.envelope
        if not arg or not isinstance(envelope, DsnEnvelope) or not self._extended():
            await super().smtp_MAIL(arg)
            return
        try:
            rest, taken = take_parameters(arg, MAIL_KEYWORDS)
            ret, envid = mail_parameters(taken)
        except DsnParameterError as exc:
            await self.push(f"501 5.5.4 {exc}")
            return
        started = envelope.mail_from is None
        await super().smtp_MAIL(rest)
        if started and envelope.mail_from is not None:  # accepted, not a nested MAIL
            envelope.dsn_ret, envelope.dsn_envid = ret, envid

    @syntax("RCPT TO: <address>", extended=" [SP <mail-parameters>]")
    async def smtp_RCPT(  # noqa: N802 - aiosmtpd dispatches commands by this name
        self, arg: str | None
    ) -> None:
        envelope = self.envelope
        if not arg or not isinstance(envelope, DsnEnvelope) or not self._extended():
            await super().smtp_RCPT(arg)
            return
        try:
            rest, taken = take_parameters(arg, RCPT_KEYWORDS)
            wanted = rcpt_parameters(taken)
        except DsnParameterError as exc:
            await self.push(f"501 5.5.4 {exc}")
            return
        before = len(envelope.rcpt_tos)
        await super().smtp_RCPT(rest)
        if len(envelope.rcpt_tos) > before and wanted != RecipientDsn():
            envelope.dsn_recipients[envelope.rcpt_tos[-1].lower()] = wanted

    def _extended(self) -> bool:
        # Parameters exist only after EHLO (RFC 5321 section 4.1.1.11); after HELO
        # aiosmtpd's own syntax error is the right answer.
        return self.session is not None and bool(self.session.extended_smtp)
