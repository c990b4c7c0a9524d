"""Deleting, flagging, moving (spam / not spam) and injecting email.

Every function checks the caller's scope and reach through
``resolvers/access.py`` first (via :func:`~mailcue_server.resolvers.emails.target_mailbox`
or ``reachable_mailbox``); a message in a mailbox the caller may not reach is
as absent as one that never existed (404 alike).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from mailcue_server.errors import Invalid, NotFound
from mailcue_server.mail.compose import Compose, build_message
from mailcue_server.mail.header_limits import check_received
from mailcue_server.mail.trace import trace_headers
from mailcue_server.resolvers.access import reachable_mailbox
from mailcue_server.resolvers.context import Context
from mailcue_server.resolvers.emails import folder_of, parse_uid, target_mailbox
from mailcue_server.resolvers.flag_changes import flag_changes
from mailcue_server.resolvers.pgp_mail import pgp_protect
from mailcue_server.schema.types.emails import (
    BulkDeleteRequest,
    BulkDeleteResponse,
    BulkInjectRequest,
    BulkInjectResponse,
    InjectedEmail,
    InjectEmailRequest,
    UpdateFlagsRequest,
)
from mailcue_server.store import appends, folder_counts, messages
from mailcue_server.store.appends import Appending
from mailcue_server.store.mail_models import INBOX

MAX_BULK_INJECT = 1000

# --- changing --------------------------------------------------------------------------------


async def delete_email(
    ctx: Context, *, uid: str, mailbox: str | None, folder: str = INBOX
) -> None:
    """Remove one message for good; ``email.deleted`` follows."""
    box = await target_mailbox(ctx, mailbox, "email:delete")
    removed = await messages.delete(box.address, folder, [parse_uid(uid)], bus=ctx.services.bus)
    if not removed:
        raise NotFound(f"Email {uid} not found")


async def bulk_delete(
    ctx: Context, *, mailbox: str, folder: str, request: BulkDeleteRequest
) -> BulkDeleteResponse:
    """Remove several messages; uids that name nothing count as failed."""
    box = await target_mailbox(ctx, mailbox, "email:delete")
    wanted: list[int] = []
    for value in request.uids:
        try:
            wanted.append(parse_uid(value))
        except NotFound:
            continue
    removed = await messages.delete(box.address, folder, wanted, bus=ctx.services.bus)
    return BulkDeleteResponse(deleted=len(removed), failed=len(request.uids) - len(removed))


async def set_seen(
    ctx: Context, *, mailbox: str, uid: str, folder: str, seen: bool
) -> dict[str, str]:
    """Mark read or unread (the ``\\Seen`` flag)."""
    return await update_flags(
        ctx, mailbox=mailbox, uid=uid, folder=folder, request=UpdateFlagsRequest(seen=seen)
    )


async def update_flags(
    ctx: Context, *, mailbox: str, uid: str, folder: str, request: UpdateFlagsRequest
) -> dict[str, str]:
    """Set or clear system flags and keywords in one change; IMAP sees it, and
    ``email.flags_changed`` announces it.

    Returns:
        ``uid``, ``status`` (``read`` or ``unread``, as the reference API answers)
        and ``flags``: every flag the message has now, space-separated.

    Raises:
        Invalid: Nothing to change, a keyword that is not an IMAP atom, or one
            both added and removed.
        NotFound: No such message, or one in a mailbox the caller may not reach.
    """
    box = await target_mailbox(ctx, mailbox, "email:write")
    add, remove = flag_changes(request)
    changed = await messages.edit_flags(
        box.address, folder, [parse_uid(uid)], add=add, remove=remove, bus=ctx.services.bus
    )
    if not changed:
        raise NotFound(f"Email {uid} not found")
    [flags] = changed.values()
    status = "read" if "\\Seen" in flags else "unread"
    return {"uid": str(parse_uid(uid)), "status": status, "flags": " ".join(flags)}


async def move_email(
    ctx: Context, *, mailbox: str, uid: str, source: str, destination: str
) -> dict[str, str]:
    """Move one message to another folder (spam / not spam)."""
    box = await target_mailbox(ctx, mailbox, "email:write")
    moved = await messages.move(
        box.address, source, [parse_uid(uid)], destination, bus=ctx.services.bus
    )
    if not moved:
        raise NotFound(f"Email {uid} not found")
    [new_uid] = moved.values()
    return {"uid": str(new_uid), "folder": folder_of(destination), "status": "moved"}


async def mark_spam(ctx: Context, *, mailbox: str, uid: str, folder: str) -> dict[str, str]:
    return await move_email(ctx, mailbox=mailbox, uid=uid, source=folder, destination="Junk")


async def mark_not_spam(ctx: Context, *, mailbox: str, uid: str) -> dict[str, str]:
    return await move_email(ctx, mailbox=mailbox, uid=uid, source="Junk", destination=INBOX)


# --- inject ----------------------------------------------------------------------------------


async def inject_email(ctx: Context, request: InjectEmailRequest) -> InjectedEmail:
    """Store a built message straight into a folder (APPEND semantics, no SMTP). Admin only."""
    ctx.require_principal().require_admin("email:write")
    appending, message_id = await _prepare_inject(ctx, request)
    [stored] = await appends.append_many([appending], bus=ctx.services.bus, source="inject")
    return InjectedEmail(
        uid=str(stored.uid), mailbox=stored.mailbox, folder=stored.folder, message_id=message_id
    )


async def bulk_inject(ctx: Context, request: BulkInjectRequest) -> BulkInjectResponse:
    """Inject up to 1,000 messages in one transaction; bad items are reported, not stored."""
    ctx.require_principal().require_admin("email:write")
    if len(request.emails) > MAX_BULK_INJECT:
        raise Invalid(f"At most {MAX_BULK_INJECT} emails per bulk inject")
    ready: list[Appending] = []
    errors: list[str] = []
    for index, item in enumerate(request.emails):
        try:
            appending, _ = await _prepare_inject(ctx, item)
        except (Invalid, NotFound) as exc:
            errors.append(f"{index}: {exc.message}")
            continue
        ready.append(appending)
    stored = await appends.append_many(ready, bus=ctx.services.bus, source="inject")
    return BulkInjectResponse(
        injected=len(stored),
        failed=len(errors),
        ids=[f"{s.mailbox}:{s.folder}:{s.uid}" for s in stored],
        errors=errors,
    )


async def _prepare_inject(ctx: Context, request: InjectEmailRequest) -> tuple[Appending, str]:
    """Check the target and build the bytes; nothing is stored yet."""
    box = await reachable_mailbox(ctx, request.mailbox, "email:write")
    await folder_counts.folder_status(box.address, request.folder)  # NotFound before building
    when = _aware(request.date) if request.date else datetime.now(UTC)
    built = build_message(
        Compose(
            from_address=request.from_address,
            to=tuple(request.to_addresses),
            cc=tuple(request.cc_addresses),
            subject=request.subject,
            text=request.text_body,
            html=request.html_body,
            reply_to=(request.reply_to,) if request.reply_to else (),
            in_reply_to=request.in_reply_to,
            references=tuple(request.references),
            headers=tuple(_header_items(request.headers or {})),
            date=when,
        )
    )
    raw = await pgp_protect(
        ctx,
        built.raw,
        sender=request.from_address,
        recipients=[*request.to_addresses, *request.cc_addresses],
        sign=request.sign,
        encrypt=request.encrypt,
    )
    if request.realistic_headers or request.return_path:
        raw = (
            trace_headers(
                sender=request.return_path or request.from_address,
                recipient=box.address,
                hostname=ctx.settings.effective_hostname,
                when=when,
                received=request.realistic_headers,
            )
            + raw
        )
    check_received(raw)  # here too, so one bulk item over the limits fails alone
    appending = Appending(
        mailbox=box.address,
        folder=request.folder,
        raw=raw,
        flags=tuple(request.flags),
        internal_date=when,
    )
    return appending, built.message_id


def _aware(moment: datetime) -> datetime:
    """A date without a zone is taken as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _header_items(headers: object) -> Sequence[tuple[str, str]]:
    if not isinstance(headers, dict):
        raise Invalid("headers must be an object of strings")
    return [(str(name), str(value)) for name, value in headers.items()]
