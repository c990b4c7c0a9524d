"""Sending mail from the API: compose, submit over SMTP, keep the sender's Sent copy.

The message goes to our own submission listener like any mail client's, so
delivery (test mode: the recipients' INBOXes) and the recipients'
``email.received`` events are the listener's job, exactly as for SMTP mail.
This module checks who may send as whom, builds the MIME message with
``mail/compose.py``, stores a ``\\Seen`` copy in the sender's Sent folder and
announces ``email.sent`` once the listener has taken the message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from email.utils import getaddresses

import aiosmtplib

from mailcue_server.errors import Invalid, NotFound, SubmissionFailed
from mailcue_server.events.bus import Event, EventType, publish_quietly
from mailcue_server.mail import dkim
from mailcue_server.mail.addresses import canonical_address, email_validator_module
from mailcue_server.mail.compose import (
    Attachment,
    Built,
    Compose,
    build_message,
    decode_base64_attachment,
)
from mailcue_server.mail.header_limits import check_received
from mailcue_server.resolvers.access import reachable_mailbox
from mailcue_server.resolvers.context import Context, SmtpTarget
from mailcue_server.resolvers.pgp_mail import pgp_protect
from mailcue_server.schema.types.sending import (
    SendAttachment,
    SendEmailRequest,
    SendEmailResponse,
)
from mailcue_server.store import appends, domains, mailboxes
from mailcue_server.store.mail_models import Mailbox, SpecialUse
from mailcue_server.store.message_rows import Stored

log = logging.getLogger(__name__)

SEND = "email:send"
ACCEPTED = "Email accepted for delivery"
SUBMIT_TIMEOUT = 30.0  # seconds per SMTP step; the listener is on this host
_ONE_CLICK = "list-unsubscribe=one-click"  # RFC 8058 section 3.1: the only allowed value
_BRACKETED = re.compile(r"<([^<>]*)>")


async def send_email(ctx: Context, request: SendEmailRequest) -> SendEmailResponse:
    """Send a message as ``request.from_address``.

    Regular users send from mailboxes they own; admins from any address,
    with or without a mailbox. API keys need ``email:send`` and their
    mailbox allow-list must include the sender.

    Returns:
        The acknowledgement with the new ``Message-ID``.

    Raises:
        Unauthenticated: No credentials.
        MissingScope: An API key without ``email:send``.
        NotFound: The sender is not a mailbox the caller may reach.
        Invalid: A field is not acceptable, or GPG was asked for.
        SubmissionFailed: The submission listener is down or refused the message.
    """
    principal = ctx.require_principal()
    principal.require_scope(SEND)
    sender, mailbox = await _sender(ctx, request.from_address)
    display = request.from_name.strip() or (mailbox.display_name if mailbox is not None else "")
    built = build_message(compose_spec(request, sender, display))
    protected = await pgp_protect(
        ctx,
        built.raw,
        sender=sender,
        recipients=built.recipients,
        sign=request.sign,
        encrypt=request.encrypt,
    )
    built = dataclasses.replace(built, raw=await dkim_signed(ctx, sender, protected))
    if len(built.raw) > ctx.settings.max_message_size:
        raise Invalid(
            f"The message is {len(built.raw)} bytes; this server takes at most "
            f"{ctx.settings.max_message_size}"
        )
    check_received(built.raw)  # before it leaves: its Sent copy must be storable
    await submit(ctx, _envelope_address(sender), built)
    copy = await _keep_sent_copy(ctx, mailbox, built.raw)
    await publish_quietly(ctx.services.bus, [_sent_event(request, sender, built, copy)])
    return SendEmailResponse(message=ACCEPTED, message_id=built.message_id)


async def check_sender(ctx: Context, address: str) -> str:
    """The canonical ``address`` if the caller may send as it, checked as :func:`send_email` does.

    Raises:
        Unauthenticated: No credentials.
        MissingScope: An API key without ``email:send``.
        Invalid: Not an address.
        NotFound: The sender is not a mailbox the caller may reach.
    """
    ctx.require_principal().require_scope(SEND)
    sender, _ = await _sender(ctx, address)
    return sender


async def dkim_signed(ctx: Context, sender: str, raw: bytes) -> bytes:
    """The message DKIM-signed when the sender's domain is one we manage (else as it is)."""
    key = await domains.signing_key(sender.rpartition("@")[2], ctx.services.secret_key)
    if key is None:
        return raw
    # dkimpy's RSA is pure Python (~8 ms a message): off the event loop.
    return await asyncio.to_thread(dkim.sign, raw, key.domain, key.selector, key.private_key_pem)


def _sent_event(
    request: SendEmailRequest, sender: str, built: Built, copy: Stored | None
) -> Event:
    """``email.sent`` on the sender's channel; it names the Sent copy when one was kept."""
    return Event(
        EventType.EMAIL_SENT,
        copy.mailbox if copy is not None else mailboxes.normalise_address(sender),
        folder=copy.folder if copy is not None else None,
        uid=copy.uid if copy is not None else None,
        data={
            "message_id": built.message_id,
            "to": list(request.to_addresses),
            "subject": request.subject,
        },
    )


async def _sender(ctx: Context, address: str) -> tuple[str, Mailbox | None]:
    """The canonical sender address and its mailbox, if the caller may send as it.

    A regular user gets :class:`NotFound` for a mailbox that is not theirs,
    the same answer as for one that does not exist (``resolvers/access.py``).
    """
    principal = ctx.require_principal()
    try:
        canonical = canonical_address(address)
    except Invalid as exc:
        raise Invalid(f"from_address: {exc.message}") from None
    if not principal.is_admin:
        return canonical, await reachable_mailbox(ctx, canonical, SEND)
    if not principal.may_use_mailbox(canonical):
        raise NotFound(f"Mailbox '{address}' not found")
    return canonical, await mailboxes.find_mailbox(canonical)


def compose_spec(request: SendEmailRequest, sender: str, display: str) -> Compose:
    """Map the API's fields onto the message builder's (which validates each one)."""
    text, html = _bodies(request)
    return Compose(
        from_address=sender,
        from_name=display,
        to=tuple(request.to_addresses),
        cc=tuple(request.cc_addresses),
        bcc=tuple(request.bcc_addresses),
        subject=request.subject,
        text=text,
        html=html,
        attachments=tuple(_attachment(item) for item in request.attachments),
        reply_to=_reply_to(request.reply_to),
        in_reply_to=request.in_reply_to or None,
        # One list item may hold several ids, as the References field itself does.
        references=tuple(ref for item in request.references for ref in item.split()),
        list_unsubscribe=_unsubscribe_urls(request.list_unsubscribe),
        list_unsubscribe_one_click=_one_click(request.list_unsubscribe_post),
        headers=_extra_headers(request),
    )


def _bodies(request: SendEmailRequest) -> tuple[str | None, str | None]:
    """``(text, html)``: an HTML body may carry a plain alternative in ``text_body``."""
    kind = request.body_type.strip().lower()
    if kind == "plain":
        if request.text_body is not None:
            raise Invalid("text_body is the plain alternative of an HTML body; use body_type html")
        return request.body, None
    if kind == "html":
        return request.text_body, request.body
    raise Invalid(f"body_type must be 'plain' or 'html', not '{request.body_type}'")


def _attachment(item: SendAttachment) -> Attachment:
    try:
        data = decode_base64_attachment(item.data)
    except Invalid as exc:
        raise Invalid(f"Attachment '{item.filename}': {exc.message}") from None
    return Attachment(filename=item.filename, content_type=item.content_type, data=data)


def _reply_to(value: str | None) -> tuple[str, ...]:
    """Addresses of a Reply-To list such as ``a@x.test, Bea <b@x.test>`` (names are dropped)."""
    if value is None or not value.strip():
        return ()
    found = [address for _, address in getaddresses([value])]
    if not found or not all(found):
        raise Invalid(f"reply_to: '{value}' is not a list of addresses")
    return tuple(found)


def _unsubscribe_urls(value: str | None) -> tuple[str, ...]:
    """URLs of ``<https://...>, <mailto:...>`` (RFC 2369 section 2) or a bare comma list."""
    if value is None or not value.strip():
        return ()
    bracketed = _BRACKETED.findall(value)
    if not bracketed:
        return tuple(url.strip() for url in value.split(",") if url.strip())
    if _BRACKETED.sub("", value).replace(",", "").strip():
        raise Invalid(f"list_unsubscribe: '{value}' mixes <URL>s with other text")
    return tuple(bracketed)


def _one_click(value: str | None) -> bool:
    if value is None or not value.strip():
        return False
    if value.strip().lower() != _ONE_CLICK:
        raise Invalid("list_unsubscribe_post must be 'List-Unsubscribe=One-Click' (RFC 8058)")
    return True


def _extra_headers(request: SendEmailRequest) -> tuple[tuple[str, str], ...]:
    """The caller's extra fields, plus ``Precedence: bulk`` for bulk mail unless given."""
    fields = list((request.headers or {}).items())
    if request.bulk and not any(name.strip().lower() == "precedence" for name, _ in fields):
        fields.append(("Precedence", "bulk"))
    return tuple(fields)


def _envelope_address(address: str) -> str:
    """The sender for ``MAIL FROM`` in ASCII (IDN domain as A-labels), as the builder writes it."""
    if address.isascii():
        return address
    checked = email_validator_module().validate_email(
        address, check_deliverability=False, allow_smtputf8=True, test_environment=True
    )
    return checked.ascii_email or address


async def submit(ctx: Context, sender: str, built: Built) -> None:
    """Hand ``built`` to our submission listener: STARTTLS, AUTH, one SMTP transaction.

    Every recipient must be accepted before ``DATA``; one refusal ends the
    session without ``DATA``, so nobody gets a partial send.

    Raises:
        SubmissionFailed: The listener is not running, unreachable, or refused.
    """
    target = ctx.services.submission
    if target is None:
        raise SubmissionFailed("Sending is not available: the SMTP listeners are not running")
    try:
        await _transaction(target, ctx.settings.effective_hostname, sender, built)
    except aiosmtplib.SMTPRecipientRefused as exc:
        raise SubmissionFailed(
            f"The mail server refused recipient {exc.recipient}: {exc.code} {exc.message}"
        ) from None
    except aiosmtplib.SMTPResponseException as exc:
        raise SubmissionFailed(
            f"The mail server refused the message: {exc.code} {exc.message}"
        ) from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        # The request boundary for this failure (STYLE rule 24): log it, answer 502.
        log.warning("submission to %s:%d failed: %r", target.host, target.port, exc)
        raise SubmissionFailed("The mail server could not be reached; nothing was sent") from None


async def _transaction(target: SmtpTarget, helo: str, sender: str, built: Built) -> None:
    client = aiosmtplib.SMTP(
        hostname=target.host,
        port=target.port,
        local_hostname=helo,  # the default, getfqdn(), may wait on DNS
        timeout=SUBMIT_TIMEOUT,
        start_tls=False,  # upgraded below with our own trust anchors
    )
    async with client:
        if target.tls_context is not None:
            await client.starttls(
                server_hostname=target.tls_hostname, tls_context=target.tls_context()
            )
        await client.login(target.username, target.password)
        await client.mail(sender)
        for recipient in built.recipients:
            await client.rcpt(recipient)
        await client.data(built.raw)


async def _keep_sent_copy(ctx: Context, mailbox: Mailbox | None, raw: bytes) -> Stored | None:
    """Store ``raw`` as read in the sender's Sent folder; where it landed, or ``None``.

    The message is already delivered, so a missing folder is logged, not raised:
    an error now would make the client send it again.
    """
    if mailbox is None:
        return None
    folders = await mailboxes.list_folders(mailbox.address)
    sent = next((f.name for f in folders if f.special_use == SpecialUse.SENT), None)
    if sent is None:
        log.info("mailbox %s has no Sent folder; no copy kept", mailbox.address)
        return None
    try:
        return await appends.append(
            mailbox.address, sent, raw, bus=ctx.services.bus, flags=("\\Seen",), source="send"
        )
    except NotFound:
        log.info("the Sent folder of %s went away; no copy kept", mailbox.address)
        return None
