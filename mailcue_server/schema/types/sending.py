"""Sending mail: the send request (with its attachments) and the acknowledgement.

Field names and defaults are the REST contract's (``SendEmailRequest``);
``text_body`` and ``headers`` are additions the official SDK or a multipart
body needs. Plain defaults, not ``strawberry.field``: that would hide the
field types from pydantic, which parses the REST body.
"""

from __future__ import annotations

import dataclasses

import strawberry

from mailcue_server.schema.types.common import StringMap, factory_defaults_in_graphql


@strawberry.input(
    name="SendAttachmentInput", description="A file to attach; `data` is base64 (RFC 4648)."
)
class SendAttachment:
    filename: str
    content_type: str
    data: str


@factory_defaults_in_graphql
@strawberry.input(
    name="SendEmailInput",
    description=(
        "A new message to send over SMTP. `bodyType` is `plain` or `html`; `textBody` adds a "
        "plain-text alternative to an HTML body. An empty `fromName` uses the sender "
        "mailbox's display name. `listUnsubscribe` takes comma-separated URLs (RFC 2369); "
        "`listUnsubscribePost` may only be `List-Unsubscribe=One-Click` (RFC 8058). `bulk` "
        "adds `Precedence: bulk`. `headers` is an object of extra header names to values."
    ),
)
class SendEmailRequest:
    from_address: str
    to_addresses: list[str]
    subject: str
    from_name: str = ""
    # dataclasses.field: strawberry.field would hide the list type from pydantic.
    cc_addresses: list[str] = dataclasses.field(default_factory=list)
    bcc_addresses: list[str] = dataclasses.field(default_factory=list)
    body: str = ""
    body_type: str = "plain"
    text_body: str | None = None
    attachments: list[SendAttachment] = dataclasses.field(default_factory=list)
    sign: bool = False
    encrypt: bool = False
    reply_to: str | None = None
    in_reply_to: str | None = None
    references: list[str] = dataclasses.field(default_factory=list)
    bulk: bool = False
    list_unsubscribe: str | None = None
    list_unsubscribe_post: str | None = None
    headers: StringMap | None = None


@strawberry.type(name="SentEmail", description="A message the mail server accepted.")
class SendEmailResponse:
    message: str
    message_id: str
    status: str = "accepted"
