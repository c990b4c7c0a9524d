"""Root fields for reading, downloading, deleting, flagging and injecting email."""

from __future__ import annotations

import base64
from collections.abc import Awaitable
from typing import Annotated

import strawberry

from mailcue_server.resolvers import email_changes, email_list, emails
from mailcue_server.resolvers.emails import FileContent
from mailcue_server.schema.context import Info
from mailcue_server.schema.errors import attempt, attempt_done, query
from mailcue_server.schema.types.common import Done, OperationError, StringMap
from mailcue_server.schema.types.email_list import EmailConnection
from mailcue_server.schema.types.emails import (
    BulkDeleteRequest,
    BulkDeleteResponse,
    BulkInjectRequest,
    BulkInjectResponse,
    Download,
    EmailDetail,
    EmailListResponse,
    InjectedEmail,
    InjectEmailRequest,
    UpdateFlagsRequest,
)

DoneResult = Annotated[Done | OperationError, strawberry.union("EmailDoneResult")]
InjectResult = Annotated[InjectedEmail | OperationError, strawberry.union("InjectResult")]
BulkInjectResult = Annotated[
    BulkInjectResponse | OperationError, strawberry.union("BulkInjectOutcome")
]
BulkDeleteResult = Annotated[
    BulkDeleteResponse | OperationError, strawberry.union("BulkDeleteOutcome")
]


@strawberry.type(name="EmailChange", description="What a flag or folder change did.")
class EmailChange:
    details: StringMap


ChangeResult = Annotated[EmailChange | OperationError, strawberry.union("EmailChangeResult")]


def as_download(content: FileContent) -> Download:
    return Download(
        filename=content.filename,
        content_type=content.content_type,
        size=len(content.data),
        content_base64=base64.b64encode(content.data).decode("ascii"),
    )


@strawberry.type
class EmailsQuery:
    @strawberry.field(description="One page of a folder; `search` uses the full-text index.")
    async def emails(
        self,
        info: Info,
        mailbox: str | None = None,
        folder: str = "INBOX",
        page: int = 1,
        page_size: int = 50,
        search: str | None = None,
        sort: str = "date_desc",
        thread_view: bool = False,
    ) -> EmailListResponse:
        return await query(
            emails.list_emails(
                info.context.ctx,
                mailbox=mailbox,
                folder=folder,
                page=page,
                page_size=page_size,
                search=search,
                sort=sort,
                thread_view=thread_view,
            )
        )

    @strawberry.field(
        description="A folder's messages as a cursor connection, newest first: `first` rows "
        "after the cursor `after`. `search` uses the full-text index."
    )
    async def email_connection(
        self,
        info: Info,
        mailbox: str | None = None,
        folder: str = "INBOX",
        first: int = 50,
        after: str | None = None,
        search: str | None = None,
    ) -> EmailConnection:
        return await query(
            email_list.folder_connection(
                info.context.ctx,
                mailbox=mailbox,
                folder=folder,
                first=first,
                after=after,
                search=search,
            )
        )

    @strawberry.field(
        description="Every mailbox you may read, newest first, as a cursor connection: "
        "the folders named `folder` (INBOX...), or without it every folder but Trash and Junk."
    )
    async def all_mail(
        self, info: Info, folder: str | None = None, first: int = 50, after: str | None = None
    ) -> EmailConnection:
        return await query(
            email_list.all_mail_connection(
                info.context.ctx, folder=folder, first=first, after=after
            )
        )

    @strawberry.field(description="One message with bodies, headers and attachment parts.")
    async def email(
        self, info: Info, uid: str, mailbox: str | None = None, folder: str = "INBOX"
    ) -> EmailDetail:
        return await query(
            emails.get_email(info.context.ctx, uid=uid, mailbox=mailbox, folder=folder)
        )

    @strawberry.field(description="The exact stored bytes (`<uid>.eml`), base64-encoded.")
    async def email_raw(
        self, info: Info, uid: str, mailbox: str | None = None, folder: str = "INBOX"
    ) -> Download:
        content = await query(
            emails.raw_email(info.context.ctx, uid=uid, mailbox=mailbox, folder=folder)
        )
        return as_download(content)

    @strawberry.field(description="One MIME part's decoded bytes, base64-encoded.")
    async def email_attachment(
        self,
        info: Info,
        uid: str,
        part_id: str,
        mailbox: str | None = None,
        folder: str = "INBOX",
    ) -> Download:
        content = await query(
            emails.email_attachment(
                info.context.ctx, uid=uid, part_id=part_id, mailbox=mailbox, folder=folder
            )
        )
        return as_download(content)


@strawberry.type
class EmailsMutation:
    @strawberry.mutation(description="Delete a message for good.")
    async def delete_email(
        self, info: Info, uid: str, mailbox: str | None = None, folder: str = "INBOX"
    ) -> DoneResult:
        return await attempt_done(
            email_changes.delete_email(info.context.ctx, uid=uid, mailbox=mailbox, folder=folder),
            done="Deleted",
        )

    @strawberry.mutation(description="Delete several messages of one folder.")
    async def bulk_delete_emails(
        self, info: Info, mailbox: str, input: BulkDeleteRequest, folder: str = "INBOX"
    ) -> BulkDeleteResult:
        return await attempt(
            email_changes.bulk_delete(
                info.context.ctx, mailbox=mailbox, folder=folder, request=input
            )
        )

    @strawberry.mutation(description="Mark a message read or unread.")
    async def set_email_seen(
        self, info: Info, mailbox: str, uid: str, seen: bool, folder: str = "INBOX"
    ) -> ChangeResult:
        return await _change(
            email_changes.set_seen(
                info.context.ctx, mailbox=mailbox, uid=uid, folder=folder, seen=seen
            )
        )

    @strawberry.mutation(
        description="Set or clear a message's flags and IMAP keywords; fields left out stay."
    )
    async def set_email_flags(
        self,
        info: Info,
        mailbox: str,
        uid: str,
        input: UpdateFlagsRequest,
        folder: str = "INBOX",
    ) -> ChangeResult:
        return await _change(
            email_changes.update_flags(
                info.context.ctx, mailbox=mailbox, uid=uid, folder=folder, request=input
            )
        )

    @strawberry.mutation(description="Move a message to Junk.")
    async def mark_email_spam(
        self, info: Info, mailbox: str, uid: str, folder: str = "INBOX"
    ) -> ChangeResult:
        return await _change(
            email_changes.mark_spam(info.context.ctx, mailbox=mailbox, uid=uid, folder=folder)
        )

    @strawberry.mutation(description="Move a message from Junk back to INBOX.")
    async def mark_email_not_spam(self, info: Info, mailbox: str, uid: str) -> ChangeResult:
        return await _change(
            email_changes.mark_not_spam(info.context.ctx, mailbox=mailbox, uid=uid)
        )

    @strawberry.mutation(description="Store a message straight into a folder. Admin only.")
    async def inject_email(self, info: Info, input: InjectEmailRequest) -> InjectResult:
        return await attempt(email_changes.inject_email(info.context.ctx, input))

    @strawberry.mutation(description="Inject up to 1,000 messages in one transaction.")
    async def bulk_inject_emails(self, info: Info, input: BulkInjectRequest) -> BulkInjectResult:
        return await attempt(email_changes.bulk_inject(info.context.ctx, input))


async def _change(call: Awaitable[dict[str, str]]) -> EmailChange | OperationError:
    result = await attempt(call)
    if isinstance(result, OperationError):
        return result
    return EmailChange(details=StringMap(result))
