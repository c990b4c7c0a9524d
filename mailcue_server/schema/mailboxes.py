"""Root fields for mailboxes: list, stats, create, delete, purge, profile and retention."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated

import strawberry

from mailcue_server.resolvers import mailboxes
from mailcue_server.schema.context import Info
from mailcue_server.schema.errors import attempt, attempt_done, query
from mailcue_server.schema.types.common import Done, OperationError
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

MailboxResult = Annotated[MailboxResponse | OperationError, strawberry.union("MailboxResult")]
MailboxDoneResult = Annotated[Done | OperationError, strawberry.union("MailboxDoneResult")]


@strawberry.type(name="Purged")
class Purged:
    deleted: int


PurgeResult = Annotated[Purged | OperationError, strawberry.union("PurgeResult")]
MailboxRetentionResult = Annotated[
    MailboxRetention | OperationError, strawberry.union("MailboxRetentionResult")
]


@strawberry.type
class MailboxesQuery:
    @strawberry.field(description="Your mailboxes (an admin's: all) with their counts.")
    async def mailboxes(self, info: Info) -> MailboxListResponse:
        return await query(mailboxes.list_mailboxes(info.context.ctx))

    @strawberry.field(description="Per-folder totals; `mailboxId` is the id or the address.")
    async def mailbox_stats(self, info: Info, mailbox_id: str) -> MailboxStats:
        return await query(mailboxes.mailbox_stats(info.context.ctx, mailbox_id))

    @strawberry.field(description="A mailbox's own retention limits and the ones enforced.")
    async def mailbox_retention(self, info: Info, address: str) -> MailboxRetention:
        return await query(mailboxes.get_retention(info.context.ctx, address))


@strawberry.type
class MailboxesMutation:
    @strawberry.mutation(description="Create a mailbox with its five folders, owned by you.")
    async def create_mailbox(self, info: Info, input: MailboxCreateRequest) -> MailboxResult:
        return await attempt(mailboxes.create_mailbox(info.context.ctx, input))

    @strawberry.mutation(description="Delete a mailbox and all its mail.")
    async def delete_mailbox(self, info: Info, address: str) -> MailboxDoneResult:
        return await attempt_done(
            mailboxes.delete_mailbox(info.context.ctx, address), done="Deleted"
        )

    @strawberry.mutation(description="Delete every email of a mailbox; folders stay.")
    async def purge_mailbox(self, info: Info, address: str) -> PurgeResult:
        result = await attempt(mailboxes.purge_mailbox(info.context.ctx, address))
        return result if isinstance(result, OperationError) else Purged(deleted=result["deleted"])

    @strawberry.mutation(
        description="Set a mailbox's own retention limits: null follows the server-wide "
        "setting, 0 is no limit. Only admins may go beyond the server-wide limits."
    )
    async def set_mailbox_retention(
        self, info: Info, address: str, input: MailboxRetentionRequest
    ) -> MailboxRetentionResult:
        return await attempt(mailboxes.set_retention(info.context.ctx, address, input))

    @strawberry.mutation(
        description="Set the password IMAP, POP3 and SMTP AUTH take for a mailbox."
    )
    async def set_mailbox_password(
        self, info: Info, address: str, input: MailboxPasswordRequest
    ) -> MailboxDoneResult:
        return await attempt_done(
            mailboxes.set_password(info.context.ctx, address, input), done="Updated"
        )

    @strawberry.mutation
    async def update_mailbox_display_name(
        self, info: Info, address: str, input: DisplayNameUpdateRequest
    ) -> MailboxDoneResult:
        return await attempt_done(
            _ok(mailboxes.update_display_name(info.context.ctx, address, input))
        )

    @strawberry.mutation
    async def update_mailbox_signature(
        self, info: Info, address: str, input: SignatureUpdateRequest
    ) -> MailboxDoneResult:
        return await attempt_done(
            _ok(mailboxes.update_signature(info.context.ctx, address, input))
        )


async def _ok(call: Awaitable[dict[str, str]]) -> str:
    await call
    return "Updated"
