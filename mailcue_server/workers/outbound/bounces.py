"""Bounces: the DSN a sender gets for recipients that failed for good.

The worker bounces after each attempt what failed for good in it (one DSN
per attempt), as Postfix does, rather than waiting for the recipients still
deferred. A recipient whose ``NOTIFY`` leaves out ``FAILURE`` (``NEVER``)
gets no DSN. The DSN returns the message's header, or all of it when the
sender asked with ``RET=FULL`` (``RET=HDRS`` asks for the header), else as
``MAILCUE_BOUNCE_RETURN`` says.

The DSN (``mail/dsn.py``) goes straight into the sender's INBOX when the
sender is one of our mailboxes, through the same ``ingest`` as SMTP mail;
otherwise it is queued with the null sender ``<>`` (DKIM-signed when our
domain is managed), so that its own failure is never bounced (RFC 5321
section 4.5.5) and bounces cannot ping-pong.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime

from mailcue_server.config import BounceReturn, Settings
from mailcue_server.errors import Invalid
from mailcue_server.events.bus import EventBus
from mailcue_server.mail import dkim
from mailcue_server.mail.dsn import FailedRecipient, build_dsn
from mailcue_server.mail.dsn_params import Return
from mailcue_server.store import domains, outbound
from mailcue_server.store.ingest import ingest
from mailcue_server.store.outbound import Claimed, RecipientReport

log = logging.getLogger(__name__)

SOURCE = "bounce"


class Bouncer:
    """Builds and sends the DSN of a message.

    Args:
        settings: Our host name (the reporting MTA) and domain (DKIM signer).
        bus: Where a locally stored DSN announces ``email.received``.
        secret_key: Opens the domain's sealed DKIM key; None sends unsigned.
    """

    def __init__(self, settings: Settings, bus: EventBus, secret_key: str | None) -> None:
        self._settings = settings
        self._bus = bus
        self._secret_key = secret_key

    async def bounce(
        self, message: Claimed, failed: Sequence[RecipientReport], now: datetime
    ) -> None:
        """Tell the envelope sender which recipients failed.

        Nothing for the null sender, nor for recipients whose NOTIFY wants none.
        """
        sender = message.mail_from
        told = [report for report in failed if report.dsn.wants_failure_notice()]
        if not sender or not told:
            return
        if message.dsn.ret is not None:
            full = message.dsn.ret is Return.FULL
        else:
            full = self._settings.bounce_return is BounceReturn.FULL
        raw = build_dsn(
            original=message.raw,
            sender=sender,
            failed=[_failed(report) for report in told],
            reporting_mta=self._settings.effective_hostname,
            arrival=message.created_at,
            now=now,
            full=full,
            envid=message.dsn.envid,
        )
        result = await ingest(
            raw, [sender], bus=self._bus, mail_from="", source=SOURCE, create_mailboxes=False
        )
        if result.stored:
            return
        sender_domain = sender.rpartition("@")[2].lower()
        if await domains.is_managed(sender_domain):
            log.warning("bounce for %s dropped: no such mailbox on our domain", sender)
            return
        await outbound.enqueue(await self._signed(raw), "", [sender], now=now)

    async def _signed(self, raw: bytes) -> bytes:
        if not self._secret_key:
            return raw
        try:
            key = await domains.signing_key(self._settings.domain, self._secret_key)
        except ValueError:
            log.warning(
                "DKIM key of %s does not open; bounce sent unsigned", self._settings.domain
            )
            return raw
        if key is None:
            return raw
        try:
            return await asyncio.to_thread(
                dkim.sign, raw, key.domain, key.selector, key.private_key_pem
            )
        except Invalid as exc:
            log.warning("bounce sent unsigned: %s", exc)
            return raw


def _failed(report: RecipientReport) -> FailedRecipient:
    return FailedRecipient(
        address=report.address,
        status=report.status or "5.0.0",
        diagnostic=report.diagnostic or "delivery failed",
        remote_mta=report.remote_host,
        from_remote=report.smtp_code > 0,
        last_attempt=report.last_attempt_at,
        original_recipient=report.dsn.orcpt,
    )
