"""Per-request DataLoaders: nested fields of a list cost one statement per field, not per row.

``GraphQLContext`` makes one :class:`Loaders` per request (STYLE rule 14).
Every row of a page that asks for, say, ``attachments`` asks in the same
event-loop turn; the loader gathers those keys and the resolver reads them
all in one statement. Nothing is cached across calls (``cache=False``): a
WebSocket connection shares its context for its whole life and must never
see stale mail.
"""

from __future__ import annotations

from collections.abc import Sequence

from strawberry.dataloader import DataLoader

from mailcue_server.resolvers import email_list, mailboxes
from mailcue_server.resolvers.context import Context
from mailcue_server.schema.types.emails import AttachmentInfo, AuthenticationInfo, MessageEnvelope
from mailcue_server.schema.types.mailboxes import FolderInfo
from mailcue_server.store.mail_pages import Stored


class Loaders:
    """The batched reads behind nested fields, for one request's context."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._stored: DataLoader[int, Stored | None] = DataLoader(
            load_fn=email_list.stored_rows, cache=False
        )
        self._folders: DataLoader[str, list[FolderInfo]] = DataLoader(
            load_fn=self._load_folders, cache=False
        )

    async def _load_folders(self, mailbox_ids: Sequence[str]) -> list[list[FolderInfo]]:
        return await mailboxes.folders_of(self._ctx, mailbox_ids)

    async def attachments(self, row_id: int) -> list[AttachmentInfo]:
        return email_list.attachments_in(await self._stored.load(row_id))

    async def authentication(self, row_id: int) -> AuthenticationInfo | None:
        return email_list.authentication_in(self._ctx, await self._stored.load(row_id))

    async def envelope(self, row_id: int) -> MessageEnvelope | None:
        return email_list.envelope_in(self._ctx, await self._stored.load(row_id))

    async def folders(self, mailbox_id: str) -> list[FolderInfo]:
        return await self._folders.load(mailbox_id)
