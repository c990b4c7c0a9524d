"""/api/v1/emails: list, read, download, delete and inject (by IMAP UID)."""

from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import Response

from mailcue_server.resolvers import email_changes, emails
from mailcue_server.resolvers.emails import FileContent
from mailcue_server.rest_compat.deps import Ctx
from mailcue_server.rest_compat.error_responses import errors
from mailcue_server.schema.types.emails import (
    BulkInjectRequest,
    BulkInjectResponse,
    EmailDetail,
    EmailListResponse,
    InjectEmailRequest,
)

router = APIRouter(prefix="/emails", tags=["Emails"])

MailboxParam = Annotated[
    str | None, Query(description="The mailbox address; optional when you have only one.")
]
FolderParam = Annotated[str, Query(description="The folder name.")]


def download(content: FileContent) -> Response:
    """The bytes as they are, with a safe Content-Disposition and no content sniffing."""
    return Response(
        content=content.data,
        media_type=content.content_type,
        headers={
            "Content-Disposition": content.content_disposition,
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("", response_model=EmailListResponse)
async def list_emails(
    ctx: Ctx,
    mailbox: MailboxParam = None,
    folder: FolderParam = "INBOX",
    page: int = 1,
    page_size: int = 50,
    search: Annotated[
        str | None,
        Query(
            description='Words, "phrases", from: to: subject: has:attachment is:read '
            "is:unread before: after:, -negation."
        ),
    ] = None,
    sort: Annotated[str, Query(description="date_desc or date_asc")] = "date_desc",
    thread_view: bool = False,
) -> EmailListResponse:
    """One page of a folder, newest first by default; `search` runs on the full-text index."""
    return await emails.list_emails(
        ctx,
        mailbox=mailbox,
        folder=folder,
        page=page,
        page_size=page_size,
        search=search,
        sort=sort,
        thread_view=thread_view,
    )


@router.post(
    "/inject",
    response_model=dict[str, str],
    status_code=status.HTTP_201_CREATED,
    responses=errors(404),
)
async def inject_email(ctx: Ctx, body: InjectEmailRequest) -> dict[str, str]:
    """Store a message straight into a mailbox folder (IMAP APPEND semantics). Admin only."""
    stored = await email_changes.inject_email(ctx, body)
    return {
        "uid": stored.uid,
        "mailbox": stored.mailbox,
        "folder": stored.folder,
        "message_id": stored.message_id,
    }


@router.post(
    "/bulk-inject", response_model=BulkInjectResponse, status_code=status.HTTP_201_CREATED
)
async def bulk_inject(ctx: Ctx, body: BulkInjectRequest) -> BulkInjectResponse:
    """Inject up to 1,000 messages in one transaction; failed items are reported. Admin only."""
    return await email_changes.bulk_inject(ctx, body)


@router.get("/{uid}", response_model=EmailDetail)
async def get_email(
    ctx: Ctx, uid: str, mailbox: MailboxParam = None, folder: FolderParam = "INBOX"
) -> EmailDetail:
    """The whole message: bodies, headers, addresses and attachment parts."""
    return await emails.get_email(ctx, uid=uid, mailbox=mailbox, folder=folder)


@router.delete("/{uid}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_email(
    ctx: Ctx, uid: str, mailbox: MailboxParam = None, folder: FolderParam = "INBOX"
) -> None:
    """Delete a message for good."""
    await email_changes.delete_email(ctx, uid=uid, mailbox=mailbox, folder=folder)


@router.get(
    "/{uid}/raw",
    response_class=Response,
    responses={200: {"content": {"message/rfc822": {}}, "description": "The .eml file."}},
)
async def raw_email(
    ctx: Ctx, uid: str, mailbox: MailboxParam = None, folder: FolderParam = "INBOX"
) -> Response:
    """The message exactly as stored, as `<uid>.eml`."""
    return download(await emails.raw_email(ctx, uid=uid, mailbox=mailbox, folder=folder))


@router.get(
    "/{uid}/attachments/{part_id}",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}, "description": "The part."}},
)
async def email_attachment(
    ctx: Ctx,
    uid: str,
    part_id: str,
    mailbox: MailboxParam = None,
    folder: FolderParam = "INBOX",
) -> Response:
    """One MIME part, decoded, with its content type and a safe filename."""
    content = await emails.email_attachment(
        ctx, uid=uid, part_id=part_id, mailbox=mailbox, folder=folder
    )
    return download(content)
