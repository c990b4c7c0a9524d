"""Mailboxes: list with counts, create, delete, purge, stats, profile and retention.

Admins manage every mailbox; a user manages the mailboxes they own and may
create new ones up to their ``max_mailboxes`` quota (the reference API's rule).
A user may make their mailbox's retention stricter than the server-wide limits,
only an admin looser (the limits are the admin's guard on storage).
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from mailcue_server.errors import Forbidden, Invalid, NotFound
from mailcue_server.mail.addresses import canonical_address
from mailcue_server.resolvers.access import reachable_mailbox, reachable_mailboxes
from mailcue_server.resolvers.context import Context, Principal
from mailcue_server.resolvers.system import MAX_RETENTION_DAYS, MAX_RETENTION_MESSAGES
from mailcue_server.resolvers.users import check_new_password
from mailcue_server.schema.types.mailboxes import (
    DisplayNameUpdateRequest,
    FolderInfo,
    MailboxCreateRequest,
    MailboxListResponse,
    MailboxPasswordRequest,
    MailboxPurpose,
    MailboxResponse,
    MailboxRetention,
    MailboxRetentionRequest,
    MailboxStats,
    SignatureUpdateRequest,
)
from mailcue_server.store import folder_counts, mail_pages, mailboxes, messages, retention, users
from mailcue_server.store import settings as stored_settings
from mailcue_server.store.folder_counts import MailboxCounts
from mailcue_server.store.mail_models import Mailbox

MAX_DISPLAY_NAME = 255
MAX_SIGNATURE = 10_000
_NO_COUNTS = MailboxCounts(emails=0, unread=0, junk=0, size_bytes=0)


def mailbox_response(mailbox: Mailbox, counts: MailboxCounts = _NO_COUNTS) -> MailboxResponse:
    local, _, domain = mailbox.address.rpartition("@")
    quota = mailbox.quota_bytes
    owner = mailbox.owner_id  # type: ignore[attr-defined]
    return MailboxResponse(
        id=str(mailbox.id),
        address=mailbox.address,
        username=local,
        display_name=mailbox.display_name,
        domain=domain,
        is_active=True,
        created_at=mailbox.created_at,
        purpose=MailboxPurpose(mailbox.purpose),
        quota_mb=quota // (1024 * 1024) if quota else 500,
        email_count=counts.emails,
        unread_count=counts.unread,
        junk_count=counts.junk,
        signature=mailbox.signature,
        owner_id=str(owner) if owner is not None else None,
        retention_max_messages=mailbox.retention_max_messages,
        retention_max_age_days=mailbox.retention_max_age_days,
    )


async def list_mailboxes(ctx: Context) -> MailboxListResponse:
    """The caller's mailboxes (an admin's: all), counts read from the folder counters."""
    principal = ctx.require_principal()
    principal.require_scope("mailbox:read")
    found = await reachable_mailboxes(principal)
    counts = await folder_counts.counts_by_mailbox([m.id for m in found])
    items = [mailbox_response(m, counts.get(str(m.id), _NO_COUNTS)) for m in found]
    return MailboxListResponse(mailboxes=items, total=len(items))


async def folders_of(ctx: Context, mailbox_ids: Sequence[str]) -> list[list[FolderInfo]]:
    """The folders of each mailbox with their counts, INBOX first, in one statement.

    For the nested ``Mailbox.folders`` field: the ids are of mailboxes a
    resolver already checked the caller may reach.
    """
    principal = ctx.require_principal()
    principal.require_scope("mailbox:read")
    grouped = await mail_pages.folders_of_mailboxes([UUID(key) for key in mailbox_ids])
    return [
        [_folder_info(folder_counts.status_of(f)) for f in grouped[key]] for key in mailbox_ids
    ]


def _folder_info(status: folder_counts.FolderStatus) -> FolderInfo:
    return FolderInfo(
        name=status.name,
        message_count=status.exists,
        unseen_count=status.unseen,
        size_bytes=status.size_bytes,
        special_use=status.special_use,
    )


async def create_mailbox(ctx: Context, request: MailboxCreateRequest) -> MailboxResponse:
    """Create a mailbox with its five folders, owned by the caller.

    Raises:
        Invalid: A bad username, domain or password.
        Forbidden: A user at their ``max_mailboxes`` quota.
        Conflict: The address is taken.
    """
    principal = ctx.require_principal()
    principal.require_scope("mailbox:write")
    username = request.username.strip()
    if not username or "@" in username:
        raise Invalid("username is the part before the @, without it")
    domain = (request.domain or ctx.settings.domain).strip()
    address = canonical_address(f"{username}@{domain}")
    check_new_password(request.password, address)
    _check_display_name(request.display_name)
    if not principal.is_admin:
        user = await users.get_active(principal.user_id)
        owned = await mailboxes.count_owned(principal.user_id)
        if user is None or owned >= user.max_mailboxes:
            limit = user.max_mailboxes if user else 0
            raise Forbidden(f"Mailbox limit reached: you may own {limit} mailboxes")
    created = await mailboxes.create_mailbox(
        address,
        bus=ctx.services.bus,
        display_name=request.display_name,
        password=request.password,
        owner_id=principal.user_id,
        purpose=request.purpose.value,
    )
    return mailbox_response(created)


async def delete_mailbox(ctx: Context, address: str) -> None:
    """Delete a mailbox with all its mail (admins: any; users: their own)."""
    mailbox = await reachable_mailbox(ctx, address, "mailbox:write")
    await messages.delete_mailbox(mailbox.address, bus=ctx.services.bus)


async def purge_mailbox(ctx: Context, address: str) -> dict[str, int]:
    """Delete every message of a mailbox, keeping its folders."""
    mailbox = await reachable_mailbox(ctx, address, "email:delete")
    deleted = await messages.purge_mailbox(mailbox.address, bus=ctx.services.bus)
    return {"deleted": deleted}


async def mailbox_stats(ctx: Context, mailbox_id: str) -> MailboxStats:
    """Per-folder totals, unread and size; ``mailbox_id`` is the id or the address."""
    address = await _address_for(mailbox_id)
    mailbox = await reachable_mailbox(ctx, address, "mailbox:read")
    counts = await folder_counts.mailbox_counts(mailbox.address)
    return MailboxStats(
        mailbox_id=str(mailbox.id),
        address=mailbox.address,
        total_emails=counts.emails,
        unread_emails=counts.unread,
        total_size_bytes=counts.size_bytes,
        folders=[_folder_info(f) for f in counts.folders],
    )


async def _address_for(mailbox_id: str) -> str:
    if "@" in mailbox_id:
        return mailbox_id
    try:
        key = UUID(mailbox_id)
    except ValueError:
        raise NotFound(f"Mailbox '{mailbox_id}' not found") from None
    found = await mailboxes.get_by_id(key)
    if found is None:
        raise NotFound(f"Mailbox '{mailbox_id}' not found")
    return found.address


async def update_display_name(
    ctx: Context, address: str, request: DisplayNameUpdateRequest
) -> dict[str, str]:
    mailbox = await reachable_mailbox(ctx, address, "mailbox:write")
    _check_display_name(request.display_name)
    await mailboxes.set_display_name(mailbox.address, request.display_name)
    return {"address": mailbox.address, "display_name": request.display_name}


async def update_signature(
    ctx: Context, address: str, request: SignatureUpdateRequest
) -> dict[str, str]:
    mailbox = await reachable_mailbox(ctx, address, "mailbox:write")
    if len(request.signature) > MAX_SIGNATURE:
        raise Invalid(f"signature is at most {MAX_SIGNATURE} characters")
    await mailboxes.set_signature(mailbox.address, request.signature)
    return {"address": mailbox.address, "signature": request.signature}


async def set_password(ctx: Context, address: str, request: MailboxPasswordRequest) -> None:
    """Set the password IMAP, POP3 and SMTP AUTH take for a mailbox (owner or admin).

    The way to give one to a mailbox test mode made for a first mail, which
    has none. Sessions already open stay open.

    Raises:
        Invalid: The password breaks the rules users' passwords follow.
        NotFound: No such mailbox, or one the caller may not manage.
    """
    mailbox = await reachable_mailbox(ctx, address, "mailbox:write")
    check_new_password(request.password, mailbox.address)
    await mailboxes.set_password(mailbox.address, request.password)


def _check_display_name(name: str) -> None:
    if len(name) > MAX_DISPLAY_NAME or any(c in name for c in "\r\n\0"):
        raise Invalid(f"display_name is one line of at most {MAX_DISPLAY_NAME} characters")


# --- retention ---------------------------------------------------------------------------


def _retention_view(mailbox: Mailbox, server: stored_settings.Retention) -> MailboxRetention:
    limits = retention.limits_of(mailbox, server)
    return MailboxRetention(
        address=mailbox.address,
        max_messages=mailbox.retention_max_messages,
        max_age_days=mailbox.retention_max_age_days,
        effective_max_messages=limits.max_messages or 0,
        effective_max_age_days=limits.max_age_days or 0,
    )


async def get_retention(ctx: Context, address: str) -> MailboxRetention:
    """The mailbox's own retention limits and the ones enforced on it."""
    mailbox = await reachable_mailbox(ctx, address, "mailbox:read")
    return _retention_view(mailbox, await stored_settings.retention())


def _own_limit(
    principal: Principal, value: int | None, field: str, high: int, server: int | None
) -> int | None:
    """``value`` checked: in range, and for a non-admin no looser than the server's limit."""
    if value is None:
        return None
    if not 0 <= value <= high:
        raise Invalid(f"{field} must be between 0 and {high}, or null to follow the server")
    looser = server is not None and (value == 0 or value > server)
    if looser and not principal.is_admin:
        raise Forbidden(
            f"{field}: the server-wide limit is {server}; only an administrator may "
            "set a looser one (or 0) for a mailbox"
        )
    return value


async def set_retention(
    ctx: Context, address: str, request: MailboxRetentionRequest
) -> MailboxRetention:
    """Set the mailbox's own limits (null follows the server, 0 is no limit); the retention
    worker applies them at its next run.

    Raises:
        Invalid: A limit is negative or too large (nothing changes).
        Forbidden: A non-admin asked for more than the server-wide limit allows.
        NotFound: No such mailbox, or one the caller may not manage.
    """
    mailbox = await reachable_mailbox(ctx, address, "mailbox:write")
    principal = ctx.require_principal()
    server = await stored_settings.retention()
    max_messages = _own_limit(
        principal,
        request.max_messages,
        "max_messages",
        MAX_RETENTION_MESSAGES,
        server.max_messages,
    )
    max_age_days = _own_limit(
        principal, request.max_age_days, "max_age_days", MAX_RETENTION_DAYS, server.max_age_days
    )
    updated = await retention.set_limits(
        mailbox.address, max_messages=max_messages, max_age_days=max_age_days
    )
    return _retention_view(updated, server)
