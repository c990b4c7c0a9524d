"""The email list a UI scrolls: a Relay-style connection of rows with lazy nested fields.

GraphQL only (REST keeps its page/page_size listing). A row is an
``EmailSummary`` plus an ``id`` and fields read only when asked for
(attachments, authentication results, envelope), which a per-request loader
fetches for a whole page in one statement (``schema/loaders.py``).
The field methods only delegate to those loaders: ``info.context`` is the
schema's ``GraphQLContext``, which this layer may not import.
"""

from __future__ import annotations

from typing import Any

import strawberry

from mailcue_server.schema.types.emails import (
    AttachmentInfo,
    AuthenticationInfo,
    EmailSummary,
    MessageEnvelope,
)


@strawberry.type(
    name="EmailRow",
    description="A message as a list shows it. Nested fields are loaded for the whole page "
    "at once, so asking for them costs the same few statements whatever the page's size.",
)
class EmailRow(EmailSummary):
    id: strawberry.ID = strawberry.field(
        default=strawberry.ID(""),
        description="Stable while the message stays in its folder: mailbox, folder and uid.",
    )
    # The message's row, for the loaders; never shown.
    row_id: strawberry.Private[int] = 0

    @classmethod
    def of(cls, summary: EmailSummary, *, id: str, row_id: int) -> EmailRow:
        fields = {name: getattr(summary, name) for name in summary.__dataclass_fields__}
        return cls(**fields, id=strawberry.ID(id), row_id=row_id)

    @strawberry.field(description="Attachment and inline parts (as the detail lists them).")
    async def attachments(self, info: strawberry.Info[Any, None]) -> list[AttachmentInfo]:
        loaded: list[AttachmentInfo] = await info.context.loaders.attachments(self.row_id)
        return loaded

    @strawberry.field(description="SPF, DKIM and DMARC as found on receipt; null if unchecked.")
    async def authentication(self, info: strawberry.Info[Any, None]) -> AuthenticationInfo | None:
        found: AuthenticationInfo | None = await info.context.loaders.authentication(self.row_id)
        return found

    @strawberry.field(description="The SMTP envelope, as the caller may see it; null if none.")
    async def envelope(self, info: strawberry.Info[Any, None]) -> MessageEnvelope | None:
        found: MessageEnvelope | None = await info.context.loaders.envelope(self.row_id)
        return found


@strawberry.type(name="EmailEdge")
class EmailEdge:
    cursor: str = strawberry.field(description="Opaque; pass as `after` to read on from here.")
    node: EmailRow


@strawberry.type(name="PageInfo", description="Relay's page info for a connection.")
class PageInfo:
    has_next_page: bool
    has_previous_page: bool
    start_cursor: str | None = None
    end_cursor: str | None = None


@strawberry.type(
    name="EmailConnection",
    description="Newest first, by received time then uid (or row across folders). Pages "
    "follow a cursor, not an offset: mail arriving meanwhile goes before the first page "
    "and never shifts or repeats a later one.",
)
class EmailConnection:
    edges: list[EmailEdge]
    page_info: PageInfo
    total_count: int = strawberry.field(description="Messages listed in all (or matching).")
