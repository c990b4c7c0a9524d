"""Building an outgoing message from the send API's fields: MIME tree, headers and envelope.

The output is what any SMTP server takes without extensions: CRLF line ends
and 7-bit content (RFC 5322 section 2.1.1 line limits), non-ASCII subject and
display names as RFC 2047 encoded words, text as 7bit when it is short-lined
ASCII and quoted-printable otherwise (RFC 2045 section 6.7), attachments in
base64 (RFC 2045 section 6.8) with RFC 2231 filenames. Text and HTML together
form a ``multipart/alternative`` (RFC 2046 section 5.1.4); attachments put a
``multipart/mixed`` around the body. ``Bcc`` recipients are in the envelope,
never in a header (RFC 5322 section 3.6.3).

Every field is checked first: a bad value raises
:class:`~mailcue_server.errors.Invalid` naming the field, and nothing the
caller passes can add a line to the header (CR/LF injection).
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address, UnstructuredHeader
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from mailcue_server.errors import Invalid
from mailcue_server.mail import parts
from mailcue_server.mail.addresses import canonical_address, email_validator_module

_POLICY = policy.SMTP.clone(cte_type="7bit", refold_source="none")
_FOLD_WIDTH = 78  # RFC 5322 section 2.1.1: SHOULD stay under 78 characters
_LINE_LIMIT = 998  # RFC 5322 section 2.1.1: MUST NOT exceed 998
_FIELD_NAME = re.compile(r"[!-9;-~]{1,76}")  # RFC 5322 section 3.6.8 ftext
_MSG_ID = re.compile(r"<?([!-;=?-~]{1,250}@[!-;=?-~]{1,250})>?")  # printable ASCII, no "<" ">"
_URL = re.compile(r"(?:https?|mailto):[!-;=?-~]{1,900}", re.IGNORECASE)
_MEDIA_TYPE = re.compile(r"([a-z0-9][a-z0-9!#$&^_.+-]{0,126})/([a-z0-9][a-z0-9!#$&^_.+-]{0,126})")
_SEVEN_BIT_LINE = re.compile(r"[\t\x20-\x7e]{0,78}")
_NEWLINE = re.compile(r"\r\n|\r|\n")
_FOLD_CHUNK = re.compile(r"[ \t]*[^ \t]+|[ \t]+")
# Fields the builder writes from the spec, or that MIME owns (RFC 2045 section 9 reserves
# every "Content-" name); Return-Path is written at final delivery (RFC 5321 section 4.4).
_OWNED_FIELDS = {
    "from": "from_address",
    "to": "to",
    "cc": "cc",
    "bcc": "bcc",
    "subject": "subject",
    "date": "date",
    "message-id": "message_id",
    "reply-to": "reply_to",
    "in-reply-to": "in_reply_to",
    "references": "references",
    "list-unsubscribe": "list_unsubscribe",
    "list-unsubscribe-post": "list_unsubscribe_one_click",
}
_STRUCTURAL_FIELDS = {"mime-version", "return-path"}


@dataclass(frozen=True, slots=True)
class Attachment:
    """A file to attach: the decoded bytes (see :func:`decode_base64_attachment`).

    An empty ``content_type`` is guessed from the filename's extension.
    """

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Compose:
    """What to send. Addresses are plain (``user@example.test``); names go in ``from_name``.

    Attributes:
        text: The plain body; with ``html`` too, the two form a ``multipart/alternative``.
            Neither gives an empty ``text/plain``. Line breaks are sent as CRLF and a
            final one is added.
        html: The HTML body.
        list_unsubscribe: ``https:`` or ``mailto:`` URLs for ``List-Unsubscribe`` (RFC 2369).
        list_unsubscribe_one_click: Add ``List-Unsubscribe-Post`` (RFC 8058); needs an
            ``https:`` URL.
        headers: Extra fields, in order; MIME and the fields above are refused.
        message_id: Generated on the sender's domain when ``None``.
        date: Must carry a time zone; now when ``None``.
    """

    from_address: str
    to: tuple[str, ...] = ()
    from_name: str = ""
    cc: tuple[str, ...] = ()
    bcc: tuple[str, ...] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    attachments: tuple[Attachment, ...] = ()
    reply_to: tuple[str, ...] = ()
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    list_unsubscribe: tuple[str, ...] = ()
    list_unsubscribe_one_click: bool = False
    headers: tuple[tuple[str, str], ...] = ()
    message_id: str | None = None
    date: datetime | None = None


@dataclass(frozen=True, slots=True)
class Built:
    """A message ready for the store or the queue.

    Attributes:
        raw: The message, CRLF line ends, 7-bit.
        message_id: Its ``Message-ID``, angle brackets included.
        recipients: The envelope: To, Cc and Bcc, each once, in that order.
    """

    raw: bytes
    message_id: str
    recipients: tuple[str, ...]


def build_message(spec: Compose) -> Built:
    """Build a message from a :class:`Compose`.

    Args:
        spec: The fields to send.

    Returns:
        The raw message, its Message-ID and the envelope recipients.

    Raises:
        Invalid: an address, header, identifier, URL, content type or date is
            not acceptable, or there is no recipient.
    """
    sender = _address(spec.from_address, "from_address")
    to = [_address(value, "to") for value in spec.to]
    cc = [_address(value, "cc") for value in spec.cc]
    bcc = [_address(value, "bcc") for value in spec.bcc]
    recipients = tuple(dict.fromkeys([*to, *cc, *bcc]))
    if not recipients:
        raise Invalid("At least one recipient (to, cc or bcc) is required")
    message_id = _message_id(spec.message_id, "message_id") or make_msgid(
        domain=sender.rpartition("@")[2]
    )
    message = EmailMessage(policy=_POLICY)
    # A tab in a display name comes back as a space; send the space (RFC 5322 section 3.2.5).
    display = _phrase(spec.from_name, "from_name").replace("\t", " ")
    message["From"] = Address(display, addr_spec=sender)
    if to:
        message["To"] = [Address(addr_spec=value) for value in to]
    if cc:
        message["Cc"] = [Address(addr_spec=value) for value in cc]
    if spec.reply_to:
        message["Reply-To"] = [Address(addr_spec=_address(v, "reply_to")) for v in spec.reply_to]
    _set_text(message, "Subject", _phrase(spec.subject, "subject"))
    message["Date"] = format_datetime(_date(spec.date))
    _set_folded(message, "Message-ID", message_id)
    if spec.in_reply_to is not None:
        _set_folded(message, "In-Reply-To", _message_id(spec.in_reply_to, "in_reply_to"))
    if spec.references:
        ids = (_message_id(value, "references") for value in spec.references)
        _set_folded(message, "References", " ".join(ids))
    _list_unsubscribe(message, spec)
    for name, value in spec.headers:
        _extra_header(message, name, value)
    message["MIME-Version"] = "1.0"
    _content(message, spec)
    return Built(
        raw=message.as_bytes(policy=_POLICY), message_id=message_id, recipients=recipients
    )


def decode_base64_attachment(s: str) -> bytes:
    """Decode an attachment's base64 text from the API (RFC 4648 section 4).

    Line breaks and spaces are allowed; anything else outside the alphabet,
    or bad padding, is refused.

    Raises:
        Invalid: ``s`` is not base64.
    """
    try:
        return base64.b64decode("".join(s.split()), validate=True)
    except (binascii.Error, ValueError) as exc:  # ValueError: non-ASCII characters
        raise Invalid(f"Attachment data is not valid base64: {exc}") from None


def _address(value: str, field: str) -> str:
    """The canonical address in ASCII, IDN domains as A-labels (RFC 5890): no SMTPUTF8."""
    try:
        address = canonical_address(value)
    except Invalid as exc:
        raise Invalid(f"{field}: {exc.message}") from None
    if address.isascii():
        return address
    validator = email_validator_module()
    checked = validator.validate_email(
        address, check_deliverability=False, allow_smtputf8=True, test_environment=True
    )
    ascii_form: str | None = checked.ascii_email
    if ascii_form is None:
        raise Invalid(f"{field}: '{value}' has a non-ASCII local part, which needs SMTPUTF8")
    return ascii_form


def _phrase(value: str, field: str) -> str:
    """One-line text (subject, display name): no control characters, so no header injection."""
    # Cc covers CR, LF, NUL, NEL; Zl and Zp are U+2028/U+2029, which str.splitlines() also breaks.
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") and ch != "\t" for ch in value):
        raise Invalid(f"{field} must be one line without control characters (CR, LF, NUL)")
    _no_lone_surrogates(value, field)
    return value


def _no_lone_surrogates(value: str, field: str) -> None:
    """JSON's "\\ud800" escapes give strings that no charset can encode."""
    if any(unicodedata.category(ch) == "Cs" for ch in value):
        raise Invalid(f"{field} contains invalid Unicode (an unpaired surrogate)")


def _message_id(value: str | None, field: str) -> str:
    """A msg-id (RFC 5322 section 3.6.4) in angle brackets; "" for ``None``."""
    if value is None:
        return ""
    match = _MSG_ID.fullmatch(value.strip())
    if match is None:
        raise Invalid(f"{field}: '{value}' is not a message id like <local@domain>")
    return f"<{match.group(1)}>"


def _date(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if value.tzinfo is None or value.utcoffset() is None:
        raise Invalid("date must carry a time zone")
    return value


def _list_unsubscribe(message: EmailMessage, spec: Compose) -> None:
    """RFC 2369 section 3.2 URLs in angle brackets; RFC 8058 section 3.1 one-click."""
    urls = [url.strip().removeprefix("<").removesuffix(">") for url in spec.list_unsubscribe]
    for url in urls:
        if not _URL.fullmatch(url):
            raise Invalid(f"list_unsubscribe: '{url}' is not an https:, http: or mailto: URL")
    if spec.list_unsubscribe_one_click and not any(u.lower().startswith("https:") for u in urls):
        raise Invalid("list_unsubscribe: one-click unsubscribe needs an https: URL (RFC 8058)")
    if urls:
        _set_folded(message, "List-Unsubscribe", ", ".join(f"<{url}>" for url in urls))
    if spec.list_unsubscribe_one_click:
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"


def _extra_header(message: EmailMessage, name: str, value: str) -> None:
    if not _FIELD_NAME.fullmatch(name):
        raise Invalid(f"Header name '{name}' is not a valid field name (RFC 5322 section 3.6.8)")
    key = name.lower()
    if key in _OWNED_FIELDS:
        raise Invalid(f"Header '{name}' is set from the '{_OWNED_FIELDS[key]}' field, not headers")
    if key.startswith("content-") or key in _STRUCTURAL_FIELDS:
        raise Invalid(f"Header '{name}' is written by the message builder and cannot be set")
    value = _phrase(value, f"Header '{name}'").strip()
    try:
        header = _POLICY.header_factory(name, value)
    except (HeaderParseError, IndexError, TypeError, ValueError) as exc:
        raise Invalid(f"Header '{name}' cannot be parsed: {exc}") from None
    if header.defects:
        raise Invalid(f"Header '{name}' is malformed: {header.defects[0]}")
    limit = _POLICY.header_max_count(name)  # RFC 5322 section 3.6 table: Sender at most once
    if limit is not None and len(message.get_all(name) or ()) >= limit:
        raise Invalid(f"Header '{name}' may appear at most {limit} time(s)")
    if isinstance(header, UnstructuredHeader):
        _set_text(message, name, value)
    elif value.isascii():
        _set_folded(message, name, value)
    else:
        message[name] = value  # a structured field: the stdlib encodes its phrases


def _set_text(message: EmailMessage, name: str, value: str) -> None:
    """Add an unstructured field (RFC 5322 section 3.2.5), RFC 2047 encoded when not ASCII.

    The stdlib's own folder loses whitespace it folds at between encoded words
    (https://github.com/python/cpython/issues/144156 is a sibling bug), while
    ``Header`` keeps every character inside the words, whose separating
    whitespace readers drop (RFC 2047 section 6.2). Plain ASCII that does not
    look like an encoded word is written as is.
    """
    if value.isascii() and "=?" not in value:
        _set_folded(message, name, value)
    else:
        message.set_raw(name, Header(value, "utf-8", header_name=name).encode(linesep="\r\n"))


def _set_folded(message: EmailMessage, name: str, value: str) -> None:
    """Add an ASCII field folded at its own whitespace (RFC 5322 section 2.2.3).

    The stdlib would turn a long identifier or URL in an unstructured field
    into RFC 2047 encoded words, which readers of ``References`` or
    ``List-Unsubscribe`` do not decode; inserting CRLF before existing
    whitespace keeps the value exact once unfolded.
    """
    lines = [""]
    for chunk in _FOLD_CHUNK.findall(value):
        used = len(lines[-1]) + (len(name) + 2 if len(lines) == 1 else 0)
        if lines[-1].strip() and chunk[0] in " \t" and used + len(chunk) > _FOLD_WIDTH:
            lines.append("")
        lines[-1] += chunk
    if len(name) + 2 + max(len(line) for line in lines) > _LINE_LIMIT:
        raise Invalid(f"Header '{name}' has a word too long for one line (RFC 5322 2.1.1)")
    message.set_raw(name, "\r\n".join(lines))


def _content(message: EmailMessage, spec: Compose) -> None:
    text = spec.text if spec.text is not None or spec.html is not None else ""
    _no_lone_surrogates(text or "", "text")
    _no_lone_surrogates(spec.html or "", "html")
    if text is not None:
        message.set_content(text, subtype="plain", charset="utf-8", cte=_text_encoding(text))
    if spec.html is not None:
        html_cte = _text_encoding(spec.html)
        if text is None:
            message.set_content(spec.html, subtype="html", charset="utf-8", cte=html_cte)
        else:
            message.add_alternative(spec.html, subtype="html", charset="utf-8", cte=html_cte)
    for number, item in enumerate(spec.attachments, 2):
        _attach(message, item, str(number))
    for part in message.walk():
        if part is not message:
            del part["MIME-Version"]  # RFC 2045 section 4: required at the top level only


def _text_encoding(text: str) -> str:
    """7bit for short-lined printable ASCII; quoted-printable for anything else."""
    if all(_SEVEN_BIT_LINE.fullmatch(line) for line in _NEWLINE.split(text)):
        return "7bit"
    return "quoted-printable"


def _attach(message: EmailMessage, item: Attachment, part_id: str) -> None:
    """One attachment; ``part_id`` is its section number, for the fallback filename."""
    ctype = item.content_type.strip().lower()
    filename = parts.safe_filename(item.filename, part_id, ctype or "application/octet-stream")
    if not ctype:
        suffix = filename.rpartition(".")[2].lower()
        ctype = parts.MEDIA_TYPES.get(f".{suffix}", "application/octet-stream")
    match = _MEDIA_TYPE.fullmatch(ctype)
    if match is None:
        raise Invalid(f"Attachment '{item.filename}': '{item.content_type}' is not a media type")
    maintype, subtype = match.groups()
    if maintype == "multipart":
        raise Invalid(f"Attachment '{item.filename}': a multipart type cannot be attached")
    cte = "base64"
    if maintype == "message":
        # RFC 2046 section 5.2.1: message/* allows only 7bit, 8bit or binary, and we send 7-bit.
        if not _is_seven_bit(item.data):
            raise Invalid(
                f"Attachment '{item.filename}': a {ctype} attachment must be 7-bit text; "
                "send it as application/octet-stream"
            )
        cte = "7bit"
    message.add_attachment(
        item.data, maintype, subtype, cte=cte, filename=filename, params={"name": filename}
    )


def _is_seven_bit(data: bytes) -> bool:
    """RFC 2045 section 2.7: ASCII without NUL, lines of at most 998 octets."""
    if not data.isascii() or b"\x00" in data:
        return False
    return all(len(line) <= _LINE_LIMIT for line in data.splitlines())
