"""Reading one whole message for the emails API: headers, addresses, bodies and attachments.

This is the slow path of STACK-NOTES ("Parsing mail on the hot path"): a full
``policy.default`` parse, made when someone opens a message; the caller caches
the result. Lists and search use the cheap :mod:`mailcue_server.mail.index`,
and the attachment rules here follow its rules, so ``has_attachments`` agrees.

Parsing and its guards live in :mod:`.full_parse`; parts are addressed by IMAP
section numbers (see :mod:`.parts`). Headers are decoded (RFC 2047 words,
RFC 2231 parameters, raw UTF-8 per RFC 6532); bodies lose their transfer
encoding (RFC 2045 section 6) and are decoded from their charset. Malformed
mail never raises: what cannot be read is left out and named in
:attr:`MessageDetail.defects`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email import errors
from email.headerregistry import AddressHeader, BaseHeader
from email.message import Message
from email.utils import getaddresses
from typing import Literal

from mailcue_server.mail import full_parse, parts
from mailcue_server.mail.header_values import parse_date

Disposition = Literal["attachment", "inline"]

_MSG_ID = re.compile(r"<[^<>\s]+>")
_BODY_TYPES = {"text/plain", "text/html"}
_SIGNATURE_TYPES = {"application/pgp-signature", "application/pkcs7-signature"}
_SMIME_TYPES = {"application/pkcs7-mime", "application/x-pkcs7-mime"}
_PGP_ENCRYPTED = "-----BEGIN PGP MESSAGE-----"
_PGP_SIGNED = "-----BEGIN PGP SIGNED MESSAGE-----"


@dataclass(frozen=True, slots=True)
class Mailbox:
    """One address of an address header, with its decoded display name ("" when none)."""

    address: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """A downloadable part (the ``AttachmentInfo`` of the REST contract, plus two fields).

    Attributes:
        part_id: Its IMAP section number, for :func:`attachment`.
        filename: The safe filename (:func:`.parts.safe_filename`).
        content_type: The media type, lowercased, without parameters.
        size: Octets after the transfer decoding.
        content_id: The ``Content-ID`` without angle brackets (``cid:`` URLs use it).
        disposition: ``attachment``, or ``inline`` for parts shown in the body
            (``multipart/related`` resources, parts marked inline, extra text parts).
    """

    part_id: str
    filename: str
    content_type: str
    size: int
    content_id: str | None
    disposition: Disposition


@dataclass(frozen=True, slots=True)
class Defect:
    """A problem found while reading.

    Attributes:
        part_id: The part's section number, or "" for the message itself.
        kind: The stdlib defect class (``StartBoundaryNotFoundDefect``...), or
            ``NestingTooDeep``, ``TooManyParts``, ``UnknownCharset``, ``ParserFailed``.
        detail: A human-readable sentence.
    """

    part_id: str
    kind: str
    detail: str


@dataclass(frozen=True, slots=True)
class MessageDetail:
    """What the email detail of the REST and GraphQL APIs shows, read from the raw bytes.

    Addresses are as written (no case folding). ``date`` is in UTC. Bodies
    use ``\\n`` line breaks. ``headers`` keeps every field in order, values
    decoded and unfolded.
    """

    message_id: str
    subject: str
    from_address: str
    from_name: str
    to: tuple[Mailbox, ...]
    cc: tuple[Mailbox, ...]
    bcc: tuple[Mailbox, ...]
    reply_to: tuple[Mailbox, ...]
    date: datetime | None
    in_reply_to: str | None
    references: tuple[str, ...]
    text_body: str | None
    html_body: str | None
    headers: tuple[tuple[str, str], ...]
    attachments: tuple[AttachmentInfo, ...]
    has_attachments: bool
    is_signed: bool
    is_encrypted: bool
    size: int
    defects: tuple[Defect, ...]

    @property
    def header_map(self) -> dict[str, str]:
        """Headers by name (REST ``raw_headers``): first spelling, repeats joined by "\\n"."""
        merged: dict[str, str] = {}
        spelling: dict[str, str] = {}
        for name, value in self.headers:
            key = spelling.setdefault(name.lower(), name)
            merged[key] = f"{merged[key]}\n{value}" if key in merged else value
        return merged


@dataclass(frozen=True, slots=True)
class AttachmentContent:
    """One part, ready to send as a download.

    Attributes:
        part_id: The section number asked for.
        filename: The safe filename.
        content_type: The media type, without parameters.
        charset: The declared charset of a text part, when it is a safe token.
        data: The exact octets after transfer decoding.
        content_disposition: The ``Content-Disposition`` header value (RFC 6266).
    """

    part_id: str
    filename: str
    content_type: str
    charset: str | None
    data: bytes
    content_disposition: str

    @property
    def content_type_header(self) -> str:
        """The ``Content-Type`` header value, with the charset of a text part."""
        if self.charset and self.content_type.startswith("text/"):
            return f"{self.content_type}; charset={self.charset}"
        return self.content_type


@dataclass
class _Scan:
    """What the walk over the MIME tree collects."""

    parts: int = 0
    text: str | None = None
    html: str | None = None
    is_signed: bool = False
    is_encrypted: bool = False
    attachments: list[AttachmentInfo] = field(default_factory=list)
    defects: list[Defect] = field(default_factory=list)

    def note(self, part_id: str, defect: errors.MessageDefect, prefix: str = "") -> None:
        doc = (type(defect).__doc__ or "").strip().splitlines()
        detail = parts.clean(str(defect)) or (doc[0] if doc else "")
        self.defects.append(Defect(part_id, type(defect).__name__, prefix + detail))


def parse_detail(raw: bytes) -> MessageDetail:
    """Read a whole message for the detail view.

    Args:
        raw: The message exactly as stored.

    Returns:
        The detail; never raises on malformed mail (see ``defects``).
    """
    scan = _Scan()
    message = _parse(raw, scan)
    headers = _headers(message, scan)
    _walk(message, "", 0, scan, resource=False)
    sender = _mailboxes(message, "from")
    message_id = _first(headers, "message-id")
    id_match = _MSG_ID.search(message_id)
    in_reply_to = _MSG_ID.search(_first(headers, "in-reply-to"))
    references = " ".join(value for name, value in headers if name.lower() == "references")
    return MessageDetail(
        message_id=id_match.group(0) if id_match else message_id,
        subject=_first(headers, "subject"),
        from_address=sender[0].address if sender else "",
        from_name=sender[0].name if sender else "",
        to=_mailboxes(message, "to"),
        cc=_mailboxes(message, "cc"),
        bcc=_mailboxes(message, "bcc"),
        reply_to=_mailboxes(message, "reply-to"),
        date=parse_date(_first(headers, "date")),
        in_reply_to=in_reply_to.group(0) if in_reply_to else None,
        references=tuple(_MSG_ID.findall(references)),
        text_body=scan.text,
        html_body=scan.html,
        headers=tuple(headers),
        attachments=tuple(scan.attachments),
        has_attachments=any(item.disposition == "attachment" for item in scan.attachments),
        is_signed=scan.is_signed,
        is_encrypted=scan.is_encrypted,
        size=len(raw),
        defects=tuple(dict.fromkeys(scan.defects)),  # a header can repeat one defect per word
    )


def attachment(raw: bytes, part_id: str) -> AttachmentContent | None:
    """One part of a message, decoded, for download.

    Any leaf part can be fetched, not only the listed attachments (a body
    part, a signature).

    Args:
        raw: The message exactly as stored.
        part_id: An IMAP section number such as ``2`` or ``1.2``.

    Returns:
        The part, or ``None`` when the id is malformed, names no part, or
        names a multipart container.
    """
    if not parts.valid_part_id(part_id):
        return None
    node = parts.find_part(_parse(raw, _Scan()), part_id)
    if node is None or parts.is_container(node):
        return None
    try:
        data = parts.part_bytes(node)
    except RecursionError:  # an embedded message nested beyond the stack: not servable
        return None
    ctype = parts.media_type(node)
    filename = parts.safe_filename(parts.raw_filename(node), part_id, ctype)
    fallback = parts.ascii_filename(filename, part_id, ctype)
    return AttachmentContent(
        part_id=part_id,
        filename=filename,
        content_type=ctype,
        charset=parts.charset(node),
        data=data,
        content_disposition=parts.content_disposition(filename, fallback),
    )


def _parse(raw: bytes, scan: _Scan) -> Message:
    message, problem = full_parse.parse(raw)
    if problem is not None:
        scan.defects.append(Defect("", problem, full_parse.PROBLEMS[problem]))
    return message


def _headers(message: Message, scan: _Scan) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for name, raw_value in message.raw_items():
        header = message.policy.header_fetch_parse(name, raw_value)
        found.append((parts.clean(name), parts.clean(str(header))))
        if isinstance(header, BaseHeader):
            for defect in header.defects:
                scan.note("", defect, f"{parts.clean(name)}: ")
    return found


def _first(headers: list[tuple[str, str]], name: str) -> str:
    return next((value.strip() for key, value in headers if key.lower() == name), "")


def _mailboxes(message: Message, name: str) -> tuple[Mailbox, ...]:
    """Every address of every ``name`` field; names are decoded before a fallback split."""
    pairs: list[tuple[str, str]] = []
    for key, raw_value in message.raw_items():
        if key.lower() != name:
            continue
        header = message.policy.header_fetch_parse(key, raw_value)
        if isinstance(header, AddressHeader):
            pairs.extend((item.display_name, item.addr_spec) for item in header.addresses)
        else:  # the structured parse failed: the lenient RFC 2822 splitter
            pairs.extend(getaddresses([str(header)]))
    return tuple(
        Mailbox(parts.clean(address), parts.clean(display))
        for display, address in pairs
        if address and address != "<>"
    )


def _walk(node: Message, part_id: str, depth: int, scan: _Scan, *, resource: bool) -> None:
    scan.parts += 1
    if scan.parts > full_parse.MAX_PARTS:
        if scan.parts == full_parse.MAX_PARTS + 1:
            scan.defects.append(
                Defect(part_id, "TooManyParts", f"parts after {full_parse.MAX_PARTS} skipped")
            )
        return
    if parts.is_container(node):
        _walk_container(node, part_id, depth, scan)
    else:
        _leaf(node, part_id or "1", scan, resource=resource)
    for defect in node.defects:  # after the leaf: decoding its payload adds defects
        scan.note(part_id, defect)


def _walk_container(node: Message, part_id: str, depth: int, scan: _Scan) -> None:
    ctype = node.get_content_type()
    if ctype == "multipart/encrypted":
        scan.is_encrypted = True  # RFC 3156 section 4: a control part and the ciphertext
        return
    if ctype == "multipart/signed":
        scan.is_signed = True
    if depth >= parts.MAX_DEPTH:
        detail = f"multiparts nested deeper than {parts.MAX_DEPTH} levels are not read"
        scan.defects.append(Defect(part_id, "NestingTooDeep", detail))
        return
    children = node.get_payload()
    for number, child in enumerate(children if isinstance(children, list) else [], 1):
        if ctype == "multipart/signed" and number > 1:
            continue  # RFC 1847 section 2.1: the second part is the signature
        if isinstance(child, Message):
            child_id = f"{part_id}.{number}" if part_id else str(number)
            # RFC 2387: the parts after the root of multipart/related are its resources.
            resource = ctype == "multipart/related" and number > 1
            _walk(child, child_id, depth + 1, scan, resource=resource)


def _leaf(node: Message, part_id: str, scan: _Scan, *, resource: bool) -> None:
    ctype = parts.media_type(node)
    if ctype in _SIGNATURE_TYPES:
        scan.is_signed = True
        return
    if ctype in _SMIME_TYPES:  # RFC 8551 section 3.2.2
        if str(node.get_param("smime-type", "")).lower() == "signed-data":
            scan.is_signed = True
        else:
            scan.is_encrypted = True
        return
    if ctype == "application/pgp-encrypted":  # RFC 3156 section 4: the control part
        scan.is_encrypted = True
        return
    disposition = node.get_content_disposition()
    name = parts.raw_filename(node)
    attached = disposition == "attachment" or (
        disposition != "inline"
        and not resource
        and ctype not in _BODY_TYPES
        and (not ctype.startswith("text/") or name is not None)
    )
    if not attached and ctype == "text/plain" and scan.text is None:
        scan.text = _text(node, part_id, scan)
        return
    if not attached and ctype == "text/html" and scan.html is None:
        scan.html = _text(node, part_id, scan)
        return
    try:
        size = len(parts.part_bytes(node))
    except RecursionError:
        size = 0
        scan.defects.append(Defect(part_id, "NestingTooDeep", "embedded message too deep"))
    scan.attachments.append(
        AttachmentInfo(
            part_id=part_id,
            filename=parts.safe_filename(name, part_id, ctype),
            content_type=ctype,
            size=size,
            content_id=parts.content_id(node),
            disposition="attachment" if attached else "inline",
        )
    )


def _text(node: Message, part_id: str, scan: _Scan) -> str:
    declared = node.get_content_charset()
    text, known = parts.decode_text(parts.part_bytes(node), declared)
    if not known:
        scan.defects.append(
            Defect(part_id, "UnknownCharset", f"charset {declared!r} unknown; read as UTF-8")
        )
    if _PGP_ENCRYPTED in text:
        scan.is_encrypted = True
    elif _PGP_SIGNED in text:
        scan.is_signed = True
    return text
