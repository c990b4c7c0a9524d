"""The index of a message: the fields lists and search need, from its raw bytes.

This runs once per stored message on the SMTP hot path, so it is cheap on
purpose (STACK-NOTES, "Parsing mail on the hot path"): header blocks are split
by :func:`header_items`, which reads fields the way the stdlib's
``compat32`` feed parser does without its per-line machinery, and the body
gets one light pass that splits MIME parts on their boundaries, reads each
part's few header lines and decodes at most :data:`PREVIEW_SCAN_BYTES` of one
text part for the preview. The full ``policy.default`` parse waits until
someone opens the message.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import html
import quopri
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.errors import MessageError
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

PREVIEW_CHARS = 200
BODY_TEXT_CHARS = 64 * 1024
PREVIEW_SCAN_BYTES = 64 * 1024
MAX_DEPTH = 8
MAX_PARTS = 200

Fields = dict[str, list[str]]
"""Header values by lowercased name: unfolded, raw UTF-8 decoded, RFC 2047 words left as is."""

_MSG_ID = re.compile(r"<[^<>\s]+>")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")
# One field with its continuation lines, in LF-only text.
_WHOLE_FIELD = re.compile(r"([\041-\071\073-\176]*):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)(?:\n|\Z)")
# The feed parser's test for a header line (email.feedparser.headerRE), less its
# "From " (only an mbox separator on the first line) and continuation cases.
_FIELD_LINE = re.compile(r"[\041-\071\073-\176]*:")
_SURROGATE = re.compile("[\ud800-\udfff]")
# ASCII whitespace (as str.isspace() has it) other than a single space; one
# substring test each is far cheaper than a regular expression over the text.
_OTHER_WHITESPACE = ("  ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")
# The usual RFC 5322 section 3.3 date; anything else goes to email.utils.
_DATE = re.compile(
    r"(?:[A-Z][a-z]{2}, )?(\d{1,2}) ([A-Z][a-z]{2}) ([1-9]\d{3}) (\d{2}):(\d{2})(?::(\d{2}))? "
    r"([+-])(\d{2})(\d{2})"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_HIDDEN_HTML = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_ADDR_SPEC = r"[^\s<>()\[\]\",;:\\@]+@[^\s<>()\[\]\",;:\\@]+"
# The address forms nearly all mail uses; anything else goes to email.utils.getaddresses,
# whose strict parsing costs about 20 us a header here.
_SIMPLE_ADDRESS = re.compile(
    rf"\s*(?:(?P<name>[^\"<>()\[\],;:\\@]*?)\s*<(?P<angle>{_ADDR_SPEC})>|(?P<bare>{_ADDR_SPEC}))\s*"
)
_PGP_ENCRYPTED = b"-----BEGIN PGP MESSAGE-----"
_PGP_SIGNED = b"-----BEGIN PGP SIGNED MESSAGE-----"
_SIGNATURE_TYPES = {"application/pgp-signature", "application/pkcs7-signature"}
_SMIME_TYPES = {"application/pkcs7-mime", "application/x-pkcs7-mime"}


@dataclass(frozen=True, slots=True)
class IndexFields:
    """What the store keeps next to the raw bytes of a message.

    Attributes:
        message_id: The ``Message-ID`` as written (angle brackets included), or "".
        subject: The decoded (RFC 2047), unfolded subject.
        from_addr: The first ``From`` address.
        from_name: Its decoded display name.
        to_addrs: The ``To`` addresses.
        cc_addrs: The ``Cc`` addresses.
        date: The ``Date`` header in UTC, or ``None`` when missing or unreadable.
        in_reply_to: The first message id of ``In-Reply-To``.
        references: The message ids of ``References``, oldest first.
        thread_id: A short hash of the thread's root message id.
        has_attachments: Whether a part is an attachment.
        preview: The first :data:`PREVIEW_CHARS` characters of the text, whitespace collapsed.
        is_signed: PGP/MIME, S/MIME or inline PGP signature.
        is_encrypted: PGP/MIME, S/MIME or inline PGP encryption.
        body_text: The first :data:`BODY_TEXT_CHARS` characters of the same text, for
            full-text search.
    """

    message_id: str
    subject: str
    from_addr: str
    from_name: str
    to_addrs: tuple[str, ...]
    cc_addrs: tuple[str, ...]
    date: datetime | None
    in_reply_to: str | None
    references: tuple[str, ...]
    thread_id: str
    has_attachments: bool
    preview: str
    is_signed: bool
    is_encrypted: bool
    body_text: str


@dataclass
class _BodyScan:
    """What the body pass collects while it walks the MIME tree."""

    parts: int = 0
    has_attachments: bool = False
    is_signed: bool = False
    is_encrypted: bool = False
    plain: str | None = None
    html: str | None = None


def index_message(raw: bytes) -> IndexFields:
    """Index one message.

    Never raises on malformed mail: a field it cannot read is left empty.

    Args:
        raw: The message exactly as stored.

    Returns:
        The index fields.
    """
    head, body = split_head(raw)
    fields = _fields(header_items(head), utf8=not head.isascii())
    message_id = _first_id(fields, "message-id") or _text(_first(fields, "message-id"))
    in_reply_to = _first_id(fields, "in-reply-to")
    references = tuple(_MSG_ID.findall(" ".join(fields.get("references", ()))))
    sender = _addresses(fields, "from")
    scan = _BodyScan()
    _walk(fields, body, 0, scan, in_related=False)
    preview_source = scan.plain if scan.plain is not None else _html_to_text(scan.html or "")
    text = _collapse_whitespace(preview_source)
    return IndexFields(
        message_id=_clean(message_id),
        subject=_clean(_text(_first(fields, "subject"))),
        from_addr=_clean(sender[0][1]) if sender else "",
        from_name=_clean(sender[0][0]) if sender else "",
        to_addrs=tuple(_clean(addr) for _, addr in _addresses(fields, "to")),
        cc_addrs=tuple(_clean(addr) for _, addr in _addresses(fields, "cc")),
        date=parse_date(_first(fields, "date")),
        in_reply_to=_clean(in_reply_to) if in_reply_to else None,
        references=tuple(_clean(ref) for ref in references),
        thread_id=thread_id(message_id, in_reply_to, references, raw),
        has_attachments=scan.has_attachments,
        preview=_clean(text[:PREVIEW_CHARS]),
        is_signed=scan.is_signed,
        is_encrypted=scan.is_encrypted,
        body_text=_clean(text[:BODY_TEXT_CHARS]),
    )


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line (RFC 5322 section 2.1), accepting LF-only mail."""
    if raw.startswith(b"\r\n"):
        return b"", raw[2:]
    if raw.startswith(b"\n"):
        return b"", raw[1:]
    # A blank line is LF, maybe CR, LF; CRLF CRLF ends where its LF CR LF does.
    crlf = raw.find(b"\n\r\n")
    lf = raw.find(b"\n\n", 0, len(raw) if crlf < 0 else crlf + 1)
    if lf >= 0:
        return raw[: lf + 2], raw[lf + 2 :]
    if crlf >= 0:
        return raw[: crlf + 3], raw[crlf + 3 :]
    return raw, b""


def thread_id(
    message_id: str, in_reply_to: str | None, references: tuple[str, ...], raw: bytes
) -> str:
    """Hash of the thread root: the first reference, else the parent, else the message itself."""
    root = references[0] if references else in_reply_to or message_id
    seed = root.encode("utf-8", "surrogateescape") if root else raw
    return hashlib.sha256(seed).hexdigest()[:24]


def _walk(fields: Fields, body: bytes, depth: int, scan: _BodyScan, *, in_related: bool) -> None:
    scan.parts += 1
    ctype = _content_type(fields)
    if ctype.startswith("multipart/"):
        _walk_multipart(fields, ctype, body, depth, scan)
        return
    if ctype in _SMIME_TYPES:
        if _param(fields, "content-type", "smime-type").lower() == "signed-data":
            scan.is_signed = True
        else:
            scan.is_encrypted = True
        return
    if ctype in _SIGNATURE_TYPES:
        scan.is_signed = True
        return
    disposition = _first(fields, "content-disposition").split(";", 1)[0].strip().lower()
    if disposition == "attachment" or (
        disposition != "inline"
        and not in_related
        and ctype not in ("text/plain", "text/html")
        and (not ctype.startswith("text/") or _has_filename(fields))
    ):
        scan.has_attachments = True
        return
    if ctype == "text/plain" and scan.plain is None:
        scan.plain = _decoded_text(fields, body, scan)
    elif ctype == "text/html" and scan.html is None:
        scan.html = _decoded_text(fields, body, scan)


def _walk_multipart(fields: Fields, ctype: str, body: bytes, depth: int, scan: _BodyScan) -> None:
    if ctype == "multipart/encrypted":
        scan.is_encrypted = True  # RFC 3156 section 4: the parts are control data and ciphertext
        return
    if ctype == "multipart/signed":
        scan.is_signed = True
    boundary = _param(fields, "content-type", "boundary")
    if not boundary or depth >= MAX_DEPTH:
        return
    for index, part in enumerate(_split_parts(body, boundary.encode("utf-8", "surrogateescape"))):
        if scan.parts >= MAX_PARTS:
            return
        if ctype == "multipart/signed" and index > 0:
            scan.parts += 1  # RFC 1847 section 2.1: the second part is the signature
            continue
        part_head, part_body = split_head(part)
        part_fields = _fields(_header_lines(part_head), utf8=not part_head.isascii())
        if ctype == "multipart/digest" and "content-type" not in part_fields:
            part_fields["content-type"] = ["message/rfc822"]  # RFC 2046 section 5.1.5
        # RFC 2387: parts after the root of multipart/related are its inline resources.
        resource = ctype == "multipart/related" and index > 0
        _walk(part_fields, part_body, depth + 1, scan, in_related=resource)


def _split_parts(body: bytes, boundary: bytes) -> list[bytes]:
    """The body parts between ``--boundary`` lines (RFC 2046 section 5.1.1), without preamble."""
    chunks = (b"\n" + body).split(b"\n--" + boundary)
    parts: list[bytes] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break  # the close delimiter; what follows is the epilogue
        line_end = chunk.find(b"\n")
        if line_end < 0:
            continue
        content = chunk[line_end + 1 :]
        parts.append(content[:-1] if content.endswith(b"\r") else content)
    return parts


def _decoded_text(fields: Fields, body: bytes, scan: _BodyScan) -> str:
    """Up to :data:`PREVIEW_SCAN_BYTES` of a text part, transfer-decoded and charset-decoded."""
    encoding = _first(fields, "content-transfer-encoding").strip().lower()
    chunk = body[:PREVIEW_SCAN_BYTES]
    if encoding == "base64":
        compact = b"".join(chunk.split())
        try:
            chunk = binascii.a2b_base64(compact[: len(compact) - len(compact) % 4])
        except binascii.Error:
            chunk = b""
    elif encoding == "quoted-printable":
        chunk = quopri.decodestring(chunk)
    if _PGP_ENCRYPTED in chunk:
        scan.is_encrypted = True
    elif _PGP_SIGNED in chunk:
        scan.is_signed = True
    charset = _param(fields, "content-type", "charset") or "utf-8"
    try:
        return chunk.decode(charset, "replace")
    except (LookupError, ValueError):  # unknown charset, or a name with a NUL in it
        return chunk.decode("utf-8", "replace")


def header_items(block: bytes) -> list[tuple[str, str]]:
    """The ``(name, value)`` fields of a message's header block, unfolded, in order.

    Reads what the stdlib's feed parser with the ``compat32`` policy reads
    (mbox ``From `` lines are skipped, a line that is neither a field nor a
    continuation ends the block, a field without a name is dropped, values
    keep trailing blanks) at a fraction of its cost: on the SMTP hot path the
    feed parser's per-line machinery cost more than the rest of the index.
    Bytes are read as ASCII with ``surrogateescape``, as compat32 does.
    """
    text = block.decode("ascii", "surrogateescape")
    crlf_or_lf = text.replace("\r\n", "\n")
    quick = _well_formed_items(crlf_or_lf)
    if quick is not None:
        return quick
    if "\r" in crlf_or_lf:
        # A bare CR ends a line for the feed parser, but only CRLF and LF unfold
        # (RFC 5322 section 2.2.3), so such a fold keeps its CR: the slow way.
        pieces = _LINE_BREAK.split(text)
        lines, breaks = pieces[0::2], ["", *pieces[1::2]]
    else:
        lines, breaks = crlf_or_lf.split("\n"), []
    items: list[tuple[str, str]] = []
    name: str | None = None
    value: list[str] = []
    for number, line in enumerate(lines):
        if line[:1] in (" ", "\t"):
            if name is not None:
                if breaks:
                    value.append(breaks[number])
                value.append(line)
            continue
        if line.startswith("From "):
            continue  # an mbox separator; the feed parser skips it too
        if name:
            items.append((name, _FOLD.sub("", "".join(value)) if breaks else "".join(value)))
        name = None
        if not line or not _FIELD_LINE.match(line):
            break
        name, _, first = line.partition(":")
        value = [first.lstrip(" \t")]
    if name:
        items.append((name, _FOLD.sub("", "".join(value)) if breaks else "".join(value)))
    return items


def _well_formed_items(text: str) -> list[tuple[str, str]] | None:
    """:func:`header_items` for the usual block (fields up to the blank line, LF
    line ends), one regular expression match per field; ``None`` for anything else."""
    if "\r" in text:
        return None
    items: list[tuple[str, str]] = []
    at = 0
    for field in _WHOLE_FIELD.finditer(text):
        if field.start() != at:
            return None  # a line that is no field: the slow path knows what to do
        at = field.end()
        name, value = field.groups()
        if name:
            items.append((name, value.replace("\n", "")))
    return items if text.startswith("\n", at) or at == len(text) else None


def _header_lines(block: bytes) -> list[tuple[str, str]]:
    """The header fields of a MIME part, leniently: a line that is no field is skipped.

    A part has a few short fields, and setting up the feedparser costs more
    than the parse (about 40 us a part, measured here).
    """
    lines: list[tuple[str, str]] = []
    for line in _FOLD.sub("", block.decode("ascii", "surrogateescape")).splitlines():
        name, colon, value = line.partition(":")
        if colon and name and not name[0].isspace():
            lines.append((name, value.strip()))
    return lines


def _fields(items: Iterable[tuple[str, str]], *, utf8: bool) -> Fields:
    """Fields by lowercased name; ``utf8`` when the block had 8-bit bytes to read back."""
    found: Fields = {}
    for name, value in items:
        if utf8:
            # RFC 6532: raw UTF-8 in headers; compat32 left it as escaped bytes.
            value = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
        found.setdefault(name.strip().lower(), []).append(value)
    return found


def _first(fields: Fields, name: str) -> str:
    values = fields.get(name)
    return values[0] if values else ""


def _content_type(fields: Fields) -> str:
    """RFC 2045 section 5.2: a missing or unreadable type means ``text/plain``."""
    value = _first(fields, "content-type").split(";", 1)[0].strip().lower()
    return value if value.count("/") == 1 else "text/plain"


def _param(fields: Fields, header: str, name: str) -> str:
    """One parameter of a structured header; the quick way for plain ``name=value``.

    RFC 2231 forms (``name*=``, ``name*0=``) go to the library's full parser.
    """
    value = _first(fields, header)
    if not value:
        return ""
    match = _param_pattern(name).search(value)
    if match is not None:
        return match.group(1) if match.group(1) is not None else match.group(2)
    if f"{name}*" not in value.lower():
        return ""
    full = _as_message(fields).get_param(name, header=header)
    if isinstance(full, tuple):  # RFC 2231 (charset, language, value)
        return str(full[2])
    return full if isinstance(full, str) else ""


@functools.cache
def _param_pattern(name: str) -> re.Pattern[str]:
    return re.compile(
        rf';\s*{re.escape(name)}\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s"]+))', re.IGNORECASE
    )


def _has_filename(fields: Fields) -> bool:
    return _as_message(fields).get_filename() is not None


def _as_message(fields: Fields) -> Message:
    """A compat32 ``Message`` with the MIME fields, for the library's parameter parsing."""
    message = Message()
    for name in ("content-type", "content-disposition"):
        for value in fields.get(name, ()):
            message[name] = value
    return message


def _clean(value: str) -> str:
    """Text any database stores: PostgreSQL refuses NUL characters and lone surrogates."""
    if value.isascii():
        return value.replace("\x00", "") if "\x00" in value else value
    if "\x00" in value:
        value = value.replace("\x00", "")
    if _SURROGATE.search(value):
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _collapse_whitespace(text: str) -> str:
    """``" ".join(text.split())``, without splitting the usual text into words.

    A body whose only whitespace is single spaces and CRLF line ends is most
    mail, and then replacing the CRLFs is enough. ``str.split()`` and ``re``'s
    ``\\s`` agree on what whitespace is (``str.isspace``).
    """
    flat = text.replace("\r\n", " ")
    if flat.isascii() and not any(other in flat for other in _OTHER_WHITESPACE):
        return flat.strip(" ")
    return " ".join(text.split())


def _html_to_text(markup: str) -> str:
    return html.unescape(_TAG.sub(" ", _HIDDEN_HTML.sub(" ", markup)))


def _text(value: str) -> str:
    """A header value with its RFC 2047 encoded words decoded."""
    if "=?" not in value:
        return value.strip()
    try:
        return str(make_header(decode_header(value))).strip()
    except (MessageError, UnicodeError, LookupError, ValueError):
        return value.strip()


def _first_id(fields: Fields, name: str) -> str | None:
    match = _MSG_ID.search(_first(fields, name))
    return match.group(0) if match else None


def _addresses(fields: Fields, name: str) -> list[tuple[str, str]]:
    """``(decoded name, address)`` pairs; addresses are split before names are decoded."""
    values = fields.get(name)
    return list(_address_list(tuple(values))) if values else []


@functools.lru_cache(maxsize=1024)
def _address_list(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Pure, and a sender (or a recipient) writes the same header to many messages."""
    pairs = _simple_addresses(list(values))
    if pairs is None:
        pairs = [(display, addr) for display, addr in getaddresses(values) if addr]
    return tuple((_text(display), addr) for display, addr in pairs)


def _simple_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """``addr`` and ``Name <addr>`` lists without quotes or comments, else ``None``."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        if '"' in value or "(" in value:
            return None
        for item in value.split(","):
            if not item.strip():
                continue
            match = _SIMPLE_ADDRESS.fullmatch(item)
            if match is None:
                return None
            if match.group("bare"):
                pairs.append(("", match.group("bare")))
            else:
                pairs.append((" ".join(match.group("name").split()), match.group("angle")))
    return pairs


@functools.lru_cache(maxsize=1024)
def parse_date(value: str) -> datetime | None:
    """A Date header as an aware UTC datetime, or ``None`` when absent or unreadable.

    Remembered: mail sent in bursts carries the same few Date headers.
    """
    if not value:
        return None
    quick = _DATE.fullmatch(value.strip())
    if quick is not None and quick.group(2) in _MONTHS:
        return _quick_date(quick)
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)  # RFC 5322 "-0000": the zone is unknown
    return parsed.astimezone(UTC)


def _quick_date(match: re.Match[str]) -> datetime | None:
    """The common form without email.utils' general parser; the same result."""
    day, month, year, hour, minute, second, sign, zone_h, zone_m = match.groups()
    offset = timedelta(hours=int(zone_h), minutes=int(zone_m))
    try:
        when = datetime(
            int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second or 0)
        )
        if sign == "-" and not offset:
            return when.replace(tzinfo=UTC)  # RFC 5322 "-0000": the zone is unknown
        zone = timezone(-offset if sign == "-" else offset)
        return when.replace(tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
