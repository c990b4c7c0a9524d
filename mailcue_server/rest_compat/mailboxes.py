"""/api/v1/mailboxes: mailboxes, their stats, and their emails by path."""

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from mailcue_server.resolvers import email_changes, emails, mailboxes
from mailcue_server.rest_compat.deps import Ctx
from mailcue_server.rest_compat.emails import download
from mailcue_server.rest_compat.error_responses import errors
from mailcue_server.schema.types.emails import (
    BulkDeleteRequest,
    BulkDeleteResponse,
    EmailDetail,
    EmailListResponse,
    SpamActionRequest,
    UpdateFlagsRequest,
)
from mailcue_server.schema.types.mailboxes import (
    DisplayNameUpdateRequest,
    MailboxCreateRequest,
    MailboxListResponse,
    MailboxPasswordRequest,
    MailboxResponse,
    MailboxRetention,
    MailboxRetentionRequest,
    MailboxStats,
    SignatureUpdateRequest,
)

router = APIRouter(prefix="/mailboxes", tags=["Mailboxes"])

FolderParam = Annotated[str, Query(description="The folder name.")]


@router.get("", response_model=MailboxListResponse)
async def list_mailboxes(ctx: Ctx) -> MailboxListResponse:
    """Your mailboxes (an admin's: all) with email, unread and junk counts."""
    return await mailboxes.list_mailboxes(ctx)


@router.post(
    "", response_model=MailboxResponse, status_code=status.HTTP_201_CREATED, responses=errors(409)
)
async def create_mailbox(ctx: Ctx, body: MailboxCreateRequest) -> MailboxResponse:
    """Create a mailbox with INBOX, Sent, Drafts, Trash and Junk, owned by you."""
    return await mailboxes.create_mailbox(ctx, body)


@router.delete("/{address}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_mailbox(ctx: Ctx, address: str) -> None:
    """Delete a mailbox and all its mail."""
    await mailboxes.delete_mailbox(ctx, address)


@router.get("/{mailbox_id}/stats", response_model=MailboxStats)
async def mailbox_stats(ctx: Ctx, mailbox_id: str) -> MailboxStats:
    """Totals, unread and size per folder; `mailbox_id` is the id or the address."""
    return await mailboxes.mailbox_stats(ctx, mailbox_id)


@router.post("/{address}/purge", response_model=dict[str, int])
async def purge_mailbox(ctx: Ctx, address: str) -> dict[str, int]:
    """Delete every email of the mailbox; its folders stay."""
    return await mailboxes.purge_mailbox(ctx, address)


@router.put("/{address}/display-name", response_model=dict[str, str])
async def update_display_name(
    ctx: Ctx, address: str, body: DisplayNameUpdateRequest
) -> dict[str, str]:
    """Set the name shown for the mailbox (and used as the sender's name)."""
    return await mailboxes.update_display_name(ctx, address, body)


@router.put("/{address}/password", status_code=status.HTTP_204_NO_CONTENT)
async def set_password(ctx: Ctx, address: str, body: MailboxPasswordRequest) -> None:
    """Set the password IMAP, POP3 and SMTP AUTH take for the mailbox (8 to 1024 characters).

    Mailboxes test mode makes for a first mail have none until this sets one.
    """
    await mailboxes.set_password(ctx, address, body)


@router.put("/{address}/signature", response_model=dict[str, str])
async def update_signature(ctx: Ctx, address: str, body: SignatureUpdateRequest) -> dict[str, str]:
    """Set the mailbox's email signature."""
    return await mailboxes.update_signature(ctx, address, body)


@router.get("/{address}/retention", response_model=MailboxRetention)
async def get_retention(ctx: Ctx, address: str) -> MailboxRetention:
    """The mailbox's own retention limits and the ones enforced on it (0: no limit)."""
    return await mailboxes.get_retention(ctx, address)


@router.put("/{address}/retention", response_model=MailboxRetention)
async def set_retention(ctx: Ctx, address: str, body: MailboxRetentionRequest) -> MailboxRetention:
    """Set the mailbox's own limits: `null` follows the server-wide setting, `0` is no limit.

    Both count every folder of the mailbox; age is from when a message was
    received. Only admins may set limits looser than the server-wide ones.
    """
    return await mailboxes.set_retention(ctx, address, body)


@router.get("/{mailbox_address}/emails", response_model=EmailListResponse)
async def list_mailbox_emails(
    ctx: Ctx,
    mailbox_address: str,
    folder: FolderParam = "INBOX",
    page: int = 1,
    page_size: int = 50,
    search: str | None = None,
    sort: str = "date_desc",
    thread_view: bool = False,
) -> EmailListResponse:
    """One page of a folder of this mailbox (same as `GET /emails?mailbox=`)."""
    return await emails.list_emails(
        ctx,
        mailbox=mailbox_address,
        folder=folder,
        page=page,
        page_size=page_size,
        search=search,
        sort=sort,
        thread_view=thread_view,
    )


@router.post("/{mailbox_address}/emails/bulk-delete", response_model=BulkDeleteResponse)
async def bulk_delete(
    ctx: Ctx, mailbox_address: str, body: BulkDeleteRequest, folder: FolderParam = "INBOX"
) -> BulkDeleteResponse:
    """Delete several emails by UID; UIDs that name nothing count as failed."""
    return await email_changes.bulk_delete(
        ctx, mailbox=mailbox_address, folder=folder, request=body
    )


@router.get("/{mailbox_address}/emails/{uid}", response_model=EmailDetail)
async def get_mailbox_email(
    ctx: Ctx, mailbox_address: str, uid: str, folder: FolderParam = "INBOX"
) -> EmailDetail:
    """The whole message."""
    return await emails.get_email(ctx, uid=uid, mailbox=mailbox_address, folder=folder)


@router.delete("/{mailbox_address}/emails/{uid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_mailbox_email(
    ctx: Ctx, mailbox_address: str, uid: str, folder: FolderParam = "INBOX"
) -> None:
    """Delete a message for good."""
    await email_changes.delete_email(ctx, uid=uid, mailbox=mailbox_address, folder=folder)


@router.get(
    "/{mailbox_address}/emails/{uid}/raw",
    response_class=Response,
    responses={200: {"content": {"message/rfc822": {}}, "description": "The .eml file."}},
)
async def raw_mailbox_email(
    ctx: Ctx, mailbox_address: str, uid: str, folder: FolderParam = "INBOX"
) -> Response:
    """The message exactly as stored, as `<uid>.eml`."""
    return download(await emails.raw_email(ctx, uid=uid, mailbox=mailbox_address, folder=folder))


@router.patch("/{mailbox_address}/emails/{uid}/flags", response_model=dict[str, str])
async def update_flags(
    ctx: Ctx,
    mailbox_address: str,
    uid: str,
    body: UpdateFlagsRequest,
    folder: FolderParam = "INBOX",
) -> dict[str, str]:
    """Set or clear flags: `seen` (read), `flagged`, `answered`, `draft`, `deleted`, and
    IMAP keywords (`add_keywords`, `remove_keywords`); fields left out stay as they are,
    unknown fields are a 422. IMAP clients see the change; `email.flags_changed` follows.

    Answers `uid`, `status` (`read` or `unread`) and `flags` (all of them, space-separated).
    """
    return await email_changes.update_flags(
        ctx, mailbox=mailbox_address, uid=uid, folder=folder, request=body
    )


@router.post("/{mailbox_address}/emails/{uid}/spam", response_model=dict[str, str])
async def mark_spam(
    ctx: Ctx, mailbox_address: str, uid: str, body: SpamActionRequest | None = None
) -> dict[str, str]:
    """Move to Junk from `folder` (INBOX by default)."""
    folder = body.folder if body is not None else "INBOX"
    return await email_changes.mark_spam(ctx, mailbox=mailbox_address, uid=uid, folder=folder)


@router.post("/{mailbox_address}/emails/{uid}/not-spam", response_model=dict[str, str])
async def mark_not_spam(ctx: Ctx, mailbox_address: str, uid: str) -> dict[str, str]:
    """Move from Junk back to INBOX."""
    return await email_changes.mark_not_spam(ctx, mailbox=mailbox_address, uid=uid)
