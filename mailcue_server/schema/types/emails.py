"""Emails: listings, details, downloads, inject and bulk operations."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import strawberry
from pydantic import ConfigDict

from mailcue_server.schema.types.common import StringMap, factory_defaults_in_graphql
from mailcue_server.schema.types.gpg import GpgEmailInfo


@strawberry.type(name="AttachmentInfo")
class AttachmentInfo:
    filename: str
    content_type: str
    size: int
    part_id: str = strawberry.field(description="Its MIME section; fetch it by this id.")
    # The Content-ID without angle brackets, for cid: links. (A plain default:
    # strawberry.field would hide an optional type from pydantic.)
    content_id: str | None = None
    disposition: str = strawberry.field(
        default="attachment", description="`attachment`, or `inline` for parts of the body."
    )


@strawberry.type(name="EmailSummary")
class EmailSummary:
    uid: str = strawberry.field(description="The IMAP UID in its folder.")
    mailbox: str
    from_address: str
    to_addresses: list[str]
    subject: str
    has_attachments: bool
    is_read: bool
    preview: str
    from_name: str = ""
    date: datetime | None = None
    message_id: str = ""
    in_reply_to: str | None = None
    references: list[str] = dataclasses.field(default_factory=list)
    thread_id: str = ""
    size: int = 0
    is_signed: bool = False
    is_encrypted: bool = False
    folder: str = "INBOX"
    flags: list[str] = dataclasses.field(default_factory=list)


@strawberry.type(name="DkimSignatureCheck")
class DkimSignatureCheck:
    result: str = strawberry.field(description="`pass`, `fail`, `temperror`, `permerror`...")
    domain: str | None = None
    selector: str | None = None


@strawberry.type(
    name="AuthenticationInfo",
    description="SPF, DKIM and DMARC as our SMTP server found them on receipt "
    "(its Authentication-Results header, RFC 8601).",
)
class AuthenticationInfo:
    spf: str = strawberry.field(description="`pass`, `fail`, `softfail`, `none`, `temperror`...")
    dkim: str = strawberry.field(description="The first passing signature's result, or the first.")
    dmarc: str = strawberry.field(description="`pass`, `fail`, `none`, `temperror`, `permerror`.")
    header: str = strawberry.field(description="The Authentication-Results value, unfolded.")
    # Plain defaults: strawberry.field would hide an optional type from pydantic.
    spf_domain: str | None = None  # smtp.mailfrom, or smtp.helo for a null sender
    dkim_domain: str | None = None  # header.d of that signature
    dkim_selector: str | None = None
    dmarc_domain: str | None = None  # header.from
    dmarc_policy: str | None = None  # policy.dmarc: the p= (or sp=) that applies
    signatures: list[DkimSignatureCheck] = dataclasses.field(default_factory=list)


@strawberry.type(
    name="MessageEnvelope",
    description="The SMTP envelope a message arrived with (RFC 5321 section 3.3) and the "
    "session around it; only mail received over SMTP or LMTP has one. `rcptTo` lists the "
    "recipients (RCPT TO) as the client wrote them, in order: every one for an "
    "administrator (unless their API key is held to some mailboxes), for anyone else only "
    "those in `deliveredTo` (the ones that led to this "
    "mailbox, an alias included), so no recipient learns who else got the message. `bcc` "
    "are the recipients of `rcptTo` named in neither To nor Cc: blind copies.",
)
class MessageEnvelope:
    mail_from: str = strawberry.field(
        description="The reverse-path (MAIL FROM), also the Return-Path header; "
        "empty for the null sender `<>`."
    )
    # Lists without strawberry.field: it would hide their type from pydantic (REST).
    rcpt_to: list[str]
    delivered_to: list[str]
    bcc: list[str]
    client_ip: str = strawberry.field(description="The SMTP client's IP address.")
    helo: str = strawberry.field(description="The name the client gave in HELO/EHLO/LHLO.")
    tls: bool = strawberry.field(description="Whether the session was encrypted.")
    listener: str = strawberry.field(
        description="The port it came in on: `smtp`, `submission`, `smtps` or `lmtp`."
    )
    transaction_id: str = strawberry.field(
        description="Our id of the transaction, as in the Received header."
    )
    # A plain default: strawberry.field would hide an optional type from pydantic.
    authenticated_as: str | None = None  # the SMTP AUTH login: mailbox address or username


@strawberry.type(name="EmailDetail")
class EmailDetail(EmailSummary):
    html_body: str | None = None
    text_body: str | None = None
    cc_addresses: list[str] = dataclasses.field(default_factory=list)
    bcc_addresses: list[str] = dataclasses.field(default_factory=list)
    raw_headers: StringMap = strawberry.field(
        default_factory=dict,
        description="Header fields by name; repeated fields joined by a newline.",
    )
    attachments: list[AttachmentInfo] = dataclasses.field(default_factory=list)
    gpg: GpgEmailInfo | None = None
    authentication: AuthenticationInfo | None = None
    # Null for mail stored by IMAP APPEND or inject (plain default, as above).
    envelope: MessageEnvelope | None = None
    # What the message does against the RFCs, such as lines over 998 octets.
    warnings: list[str] = dataclasses.field(default_factory=list)


@strawberry.type(name="EmailPage")
class EmailListResponse:
    total: int
    page: int
    page_size: int
    emails: list[EmailSummary]
    has_more: bool = False


@strawberry.type(name="Download", description="A file's bytes, base64-encoded for GraphQL.")
class Download:
    filename: str
    content_type: str
    size: int
    content_base64: str


@strawberry.type(name="Injected", description="Where an injected message was stored.")
class InjectedEmail:
    uid: str
    mailbox: str
    folder: str
    message_id: str


@factory_defaults_in_graphql
@strawberry.input(name="InjectEmailInput")
class InjectEmailRequest:
    mailbox: str
    from_address: str
    to_addresses: list[str]
    subject: str
    html_body: str | None = None
    text_body: str | None = None
    date: datetime | None = None
    headers: StringMap = strawberry.field(
        default_factory=dict, description="Extra header fields, name to value."
    )
    sign: bool = False
    encrypt: bool = False
    reply_to: str | None = None
    in_reply_to: str | None = None
    references: list[str] = dataclasses.field(default_factory=list)
    cc_addresses: list[str] = dataclasses.field(default_factory=list)
    return_path: str | None = None
    realistic_headers: bool = True
    folder: str = "INBOX"
    flags: list[str] = dataclasses.field(default_factory=list)


@strawberry.input(name="BulkInjectInput")
class BulkInjectRequest:
    emails: list[InjectEmailRequest]


@strawberry.type(name="BulkInjectResult")
class BulkInjectResponse:
    injected: int
    failed: int
    ids: list[str]  # "mailbox:folder:uid" of each stored message
    errors: list[str] = dataclasses.field(default_factory=list)  # "index: reason"


@strawberry.input(name="BulkDeleteInput")
class BulkDeleteRequest:
    uids: list[str]


@strawberry.type(name="BulkDeleteResult")
class BulkDeleteResponse:
    deleted: int
    failed: int


@factory_defaults_in_graphql
@strawberry.input(
    name="UpdateFlagsInput",
    description="Flags to set (true) or clear (false); fields left out stay as they are.",
)
class UpdateFlagsRequest:
    # Plain defaults: strawberry.field would hide the optional types from pydantic.
    seen: bool | None = None  # \Seen: read
    flagged: bool | None = None  # \Flagged: starred
    answered: bool | None = None  # \Answered
    draft: bool | None = None  # \Draft
    deleted: bool | None = None  # \Deleted: IMAP EXPUNGE removes it
    # IMAP keywords such as $Label1 or $Forwarded (atoms, no backslash).
    add_keywords: list[str] = dataclasses.field(default_factory=list)
    remove_keywords: list[str] = dataclasses.field(default_factory=list)
    # REST: a field this route does not know (a typo, `starred`) is a 422, never ignored.
    __pydantic_config__ = ConfigDict(extra="forbid")


@strawberry.input(name="SpamActionInput")
class SpamActionRequest:
    folder: str = "INBOX"
