"""Reading and downloading email, and finding the mailbox and message a call is about.

Every function checks the caller's scope and reach through
``resolvers/access.py`` first; a message in a mailbox the caller may not
reach is as absent as one that never existed (404 alike). Deleting,
flagging, moving and injecting are in ``resolvers/email_changes.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass

from mailcue_server.errors import Invalid, NotFound
from mailcue_server.mail.addresses import canonical_address
from mailcue_server.mail.auth_results import trusted_results
from mailcue_server.mail.line_checks import line_warnings
from mailcue_server.mail.mime import AttachmentInfo as PartInfo
from mailcue_server.mail.mime import attachment, parse_detail
from mailcue_server.mail.search_query import parse_search
from mailcue_server.resolvers.access import reachable_mailbox, reachable_mailboxes
from mailcue_server.resolvers.context import Context, Principal
from mailcue_server.resolvers.pgp_mail import PgpReading, import_offered_keys, pgp_reading
from mailcue_server.schema.types.common import StringMap
from mailcue_server.schema.types.emails import (
    AttachmentInfo,
    AuthenticationInfo,
    DkimSignatureCheck,
    EmailDetail,
    EmailListResponse,
    EmailSummary,
    MessageEnvelope,
)
from mailcue_server.store import aliases, mailboxes, message_queries, paging
from mailcue_server.store.envelopes import SmtpEnvelope, read_envelope
from mailcue_server.store.mail_models import (
    DEFAULT_FOLDERS,
    INBOX,
    Mailbox,
    Message,
    SystemFlag,
    decode_flags,
)
from mailcue_server.store.message_queries import Sort

MAX_PAGE_SIZE = 500
SORTS = {"date_desc": Sort.DATE_DESC, "date_asc": Sort.DATE_ASC}


@dataclass(frozen=True, slots=True)
class FileContent:
    """A download: REST sends the bytes, GraphQL their base64."""

    filename: str
    content_type: str
    content_disposition: str
    data: bytes


# --- the mailbox a call is about --------------------------------------------------------------


async def target_mailbox(ctx: Context, address: str | None, scope: str) -> Mailbox:
    """The mailbox named by ``address``, or the caller's only one when none is named.

    Raises:
        Invalid: No address given and the caller reaches several mailboxes (or none).
        NotFound: No such mailbox within the caller's reach.
    """
    if address:
        return await reachable_mailbox(ctx, address, scope)
    principal = ctx.require_principal()
    principal.require_scope(scope)
    reachable = await reachable_mailboxes(principal)
    if len(reachable) != 1:
        raise Invalid("Say which mailbox: the 'mailbox' parameter is required")
    return reachable[0]


def parse_uid(uid: str | int) -> int:
    """A REST uid as the IMAP UID it names; anything else names no message (404)."""
    text = str(uid).strip()
    # isascii too: "³".isdigit() is true, and int("³") raises.
    if not (text.isascii() and text.isdigit()) or not 0 < int(text) < 2**32:
        raise NotFound(f"Email {uid} not found")
    return int(text)


async def _message(
    ctx: Context, mailbox: str | None, folder: str, uid: str, scope: str
) -> tuple[Mailbox, Message]:
    """The mailbox and the whole stored message (raw bytes included)."""
    box = await target_mailbox(ctx, mailbox, scope)
    try:
        return box, await message_queries.get_by_uid(box.address, folder, parse_uid(uid))
    except NotFound:
        raise NotFound(f"Email {uid} not found") from None


# --- reading ---------------------------------------------------------------------------------


def summary_of(message: Message, address: str, folder: str) -> EmailSummary:
    """The listing shape of a stored message, from its index columns (no raw bytes)."""
    return EmailSummary(
        uid=str(message.uid),
        mailbox=address,
        folder=folder,
        from_address=message.from_addr,
        from_name=message.from_name,
        to_addresses=list(message.to_addrs),
        subject=message.subject,
        date=message.date_header or message.internal_date,
        has_attachments=message.has_attachments,
        is_read=bool(message.flags & SystemFlag.SEEN),
        flags=decode_flags(message.flags, message.keywords),
        preview=message.preview,
        message_id=message.message_id,
        in_reply_to=message.in_reply_to,
        references=list(message.references),
        thread_id=message.thread_id,
        size=message.size,
        is_signed=message.is_signed,
        is_encrypted=message.is_encrypted,
    )


async def list_emails(
    ctx: Context,
    *,
    mailbox: str | None,
    folder: str = INBOX,
    page: int = 1,
    page_size: int = 50,
    search: str | None = None,
    sort: str = "date_desc",
    thread_view: bool = False,
) -> EmailListResponse:
    """One page of a folder, newest first by default, optionally searched.

    Raises:
        Invalid: A page below 1, a page size outside 1..500, an unknown sort or a bad search.
        NotFound: No such mailbox (within reach) or folder.
    """
    if page < 1:
        raise Invalid("page starts at 1")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise Invalid(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
    if sort not in SORTS:
        raise Invalid(f"sort must be one of: {', '.join(SORTS)}")
    box = await _mailbox_to_list(ctx, mailbox, folder, search)
    if box is None:
        return EmailListResponse(total=0, page=page, page_size=page_size, emails=[])
    found = await message_queries.list_page(
        box.address,
        folder,
        offset=paging.offset_of(page, page_size),
        limit=page_size,
        sort=Sort.THREAD if thread_view else SORTS[sort],
        search=search,
    )
    emails = [summary_of(m, box.address, folder_of(folder)) for m in found.messages]
    return EmailListResponse(
        total=found.total,
        page=page,
        page_size=page_size,
        emails=emails,
        has_more=page * page_size < found.total,
    )


async def _mailbox_to_list(
    ctx: Context, address: str | None, folder: str, search: str | None
) -> Mailbox | None:
    """The mailbox to list, or ``None`` for one that is empty because it does not exist yet.

    In test mode a mailbox appears with its first mail, so a client waiting
    for that mail (the SDK's ``wait_for``) polls an address that has no
    mailbox yet. Such a listing is empty rather than 404 for a caller who
    could read the mailbox once it exists: an admin (test-mode mailboxes have
    no owner), through a key whose allow-list permits the address. Everyone
    else keeps the 404 that a mailbox of another user gets too, so the answer
    reveals nothing about other users' mailboxes. An address that an alias
    redirects never becomes a mailbox, so it stays 404.
    """
    try:
        return await target_mailbox(ctx, address, "email:read")
    except NotFound:
        if not address or not await _appears_with_first_mail(ctx, address, folder):
            raise
    parse_search(search or "")  # a bad search is a 400 whether or not the mailbox exists
    return None


async def _appears_with_first_mail(ctx: Context, address: str, folder: str) -> bool:
    principal = ctx.require_principal()
    if ctx.settings.is_production or not principal.is_admin:
        return False
    try:
        canonical = canonical_address(address)
    except Invalid:
        return False
    default_folders = {name for name, _ in DEFAULT_FOLDERS}
    return (
        principal.may_use_mailbox(canonical)
        and folder_of(folder) in default_folders
        and await mailboxes.find_mailbox(canonical) is None
        and not await aliases.has_alias(canonical)
    )


def folder_of(name: str) -> str:
    """A folder name as we report it: any spelling of INBOX is ``INBOX`` (RFC 3501 5.1)."""
    return INBOX if name.upper() == INBOX else name


async def get_email(
    ctx: Context, *, uid: str, mailbox: str | None, folder: str = INBOX
) -> EmailDetail:
    """The whole message: bodies, every header, addresses and attachment parts.

    A PGP message also gets its ``gpg`` report; when the mailbox holds the
    private key, the bodies and attachments shown are the decrypted ones.
    Mail received over SMTP/LMTP shows its envelope (see :func:`envelope_view`),
    whose Bcc recipients also join ``bcc_addresses``.

    The parsing runs in a worker thread: the stdlib's header parser takes
    seconds over a header of many thousand fields (mail stored before the
    limits of ``mail/header_limits.py``), and the event loop serves every
    other client meanwhile. A thread hop costs tens of microseconds, a parse
    of a small message milliseconds, so every message goes there.
    """
    box, message = await _message(ctx, mailbox, folder, uid, "email:read")
    raw = bytes(message.raw_bytes)
    detail = await asyncio.to_thread(parse_detail, raw)
    named = [*message.to_addrs, *(m.address for m in detail.cc)]
    envelope = envelope_view(ctx.require_principal(), read_envelope(message.envelope), named)
    bcc = [m.address for m in detail.bcc]
    if envelope is not None:
        bcc += _missing(envelope.bcc, bcc)
    if ctx.settings.gpg_auto_import:
        await import_offered_keys(ctx, raw, box)
    reading = await _pgp_reading(ctx, box, message, raw)
    shown = detail
    if reading is not None and reading.decrypted_message is not None:
        shown = await asyncio.to_thread(parse_detail, reading.decrypted_message)
    summary = summary_of(message, box.address, folder_of(folder))
    return EmailDetail(
        **{field.name: getattr(summary, field.name) for field in dataclasses.fields(summary)},
        text_body=shown.text_body,
        html_body=shown.html_body,
        cc_addresses=[m.address for m in detail.cc],
        bcc_addresses=bcc,
        raw_headers=StringMap(detail.header_map),
        attachments=[attachment_view(part) for part in shown.attachments],
        gpg=reading.info if reading is not None else None,
        authentication=await asyncio.to_thread(
            authentication_view, raw, ctx.settings.effective_hostname
        ),
        envelope=envelope,
        warnings=await asyncio.to_thread(line_warnings, raw),
    )


def envelope_view(
    principal: Principal, stored: SmtpEnvelope | None, named: list[str]
) -> MessageEnvelope | None:
    """The envelope as this reader may see it.

    The whole RCPT list tells who else got the message, Bcc recipients
    included. An administrator who may read every mailbox sees it all; anyone
    else sees the recipients that led to this mailbox (their own address, or
    the alias that reached them), which is what a recipient of a real MTA
    learns from Delivered-To and the Received ``for`` clause.
    """
    if stored is None:
        return None
    sees_all = principal.is_admin and principal.allowed_mailboxes is None
    mine = {_key(address) for address in stored.delivered_to}
    shown = [r for r in stored.rcpt_to if sees_all or _key(r) in mine]
    return MessageEnvelope(
        mail_from=stored.mail_from,
        rcpt_to=shown,
        delivered_to=list(stored.delivered_to),
        bcc=_missing(shown, named),
        client_ip=stored.client_ip,
        helo=stored.helo,
        tls=stored.tls,
        listener=stored.listener,
        transaction_id=stored.transaction_id,
        authenticated_as=stored.auth,
    )


def _key(address: str) -> str:
    return address.strip().lower()


def _missing(addresses: list[str], among: list[str]) -> list[str]:
    """The addresses not in ``among`` (case-insensitively), in order, each once."""
    seen = {_key(address) for address in among}
    missing: list[str] = []
    for address in addresses:
        if _key(address) not in seen:
            seen.add(_key(address))
            missing.append(address)
    return missing


async def _pgp_reading(
    ctx: Context, box: Mailbox, message: Message, raw: bytes
) -> PgpReading | None:
    """Only messages the index marked as signed or encrypted are opened (the rest are not PGP)."""
    if not (message.is_signed or message.is_encrypted):
        return None
    return await pgp_reading(ctx, raw, box)


def authentication_view(raw: bytes, authserv_id: str) -> AuthenticationInfo | None:
    """Our own Authentication-Results only (never one that came inside the message)."""
    found = trusted_results(raw, authserv_id)
    if found is None:
        return None
    dkim = found.dkim_summary
    return AuthenticationInfo(
        spf=found.spf.result,
        dkim=dkim.result,
        dmarc=found.dmarc.result,
        header=found.header,
        spf_domain=found.spf.domain,
        dkim_domain=dkim.domain,
        dkim_selector=dkim.selector,
        dmarc_domain=found.dmarc.from_domain,
        dmarc_policy=found.dmarc.policy,
        signatures=[
            DkimSignatureCheck(result=check.result, domain=check.domain, selector=check.selector)
            for check in found.dkim
        ],
    )


def attachment_view(part: PartInfo) -> AttachmentInfo:
    return AttachmentInfo(
        filename=part.filename,
        content_type=part.content_type,
        size=part.size,
        part_id=part.part_id,
        content_id=part.content_id,
        disposition=str(part.disposition),
    )


async def raw_email(
    ctx: Context, *, uid: str, mailbox: str | None, folder: str = INBOX
) -> FileContent:
    """The exact stored bytes, as ``<uid>.eml``."""
    _, message = await _message(ctx, mailbox, folder, uid, "email:read")
    return FileContent(
        filename=f"{message.uid}.eml",
        content_type="message/rfc822",
        content_disposition=f'attachment; filename="{message.uid}.eml"',
        data=bytes(message.raw_bytes),
    )


async def email_attachment(
    ctx: Context, *, uid: str, part_id: str, mailbox: str | None, folder: str = INBOX
) -> FileContent:
    """One MIME part's decoded bytes under a safe filename."""
    box, message = await _message(ctx, mailbox, folder, uid, "email:read")
    raw = bytes(message.raw_bytes)
    part = await asyncio.to_thread(attachment, raw, part_id)  # off the loop: see get_email
    reading = await _pgp_reading(ctx, box, message, raw)
    if reading is not None and reading.decrypted_message is not None:
        # The parts listed for an encrypted message are the decrypted ones.
        part = await asyncio.to_thread(attachment, reading.decrypted_message, part_id)
    if part is None:
        raise NotFound(f"Attachment {part_id} not found in email {uid}")
    return FileContent(
        filename=part.filename,
        content_type=part.content_type_header,
        content_disposition=part.content_disposition,
        data=part.data,
    )
