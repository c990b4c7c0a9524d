"""One MIME part: where it sits in the tree, its type, its bytes, its text and its filename.

Part ids are IMAP section numbers (RFC 3501 section 6.4.5, RFC 9051 section
6.4.5), so ``1.2`` names the same octets as an IMAP ``BODY[1.2]``:

- the parts of a multipart are numbered from 1, and a nested part adds a
  dot-separated number (``2.1.3``);
- a message that is not multipart has one part, ``1``: its body;
- inside a ``message/rfc822`` part ``2``, the encapsulated message's parts are
  ``2.1``, ``2.2`` (or only ``2.1``, its body, when it is not multipart).

Filenames from mail are untrusted: :func:`safe_filename` turns any of them
into a name a browser or a disk can take, and :func:`content_disposition`
writes the RFC 6266 header with its RFC 8187 ``filename*`` form.
"""

from __future__ import annotations

import re
import unicodedata
from email import policy
from email.message import Message
from email.utils import collapse_rfc2231_value
from urllib.parse import quote

from mailcue_server.mail.header_block import split_head

MAX_DEPTH = 50
"""Multiparts nested deeper than this are not read (real mail stays under about ten)."""

ENCAPSULATED = frozenset({"message/rfc822", "message/global"})
"""Types whose content is a whole message (RFC 2046 section 5.2.1, RFC 6532 section 3.7)."""

MAX_FILENAME_BYTES = 255
"""The usual limit of one path component (ext4, NTFS in UTF-16 units, APFS)."""

_PART_ID = re.compile(r"[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,8})*")
# RFC 6838 section 4.2 restricted names; anything else is not served as a media type.
_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,126}/[a-z0-9][a-z0-9!#$&^_.+-]{0,126}")
_CHARSET = re.compile(r"[A-Za-z0-9!#$%&'+^_`{}~.-]{1,64}")
_NEWLINE = re.compile(r"\r\n?")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SPACES = re.compile(r"\s+")
# Characters Windows refuses in names (':' also starts NTFS streams and drive letters).
_RESERVED_CHARS = str.maketrans(dict.fromkeys('<>:|?*"', "_"))
_DROPPED_CATEGORIES = {"Cc", "Cf", "Cs"}  # controls, invisible format (bidi overrides), surrogates
_DEVICE_NAMES = {"CON", "PRN", "AUX", "NUL"} | {
    f"{dev}{n}" for dev in ("COM", "LPT") for n in range(1, 10)
}
# Letters and punctuation NFKD leaves without an ASCII base.
_ASCII_FOLDS = str.maketrans("øØłŁđĐ\u2013\u2014\u2018\u2019", "oOlLdD--''") | str.maketrans(
    {"ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE"}
)
# RFC 8187 section 3.2.1 attr-char, beyond the letters, digits and "_.-~" quote() keeps anyway.
_ATTR_CHARS = "!#$&+^`|"
_EXTENSIONS = {
    "application/gzip": ".gz",
    "application/json": ".json",
    "application/msword": ".doc",
    "application/octet-stream": ".bin",
    "application/pdf": ".pdf",
    "application/pgp-encrypted": ".pgp",
    "application/pgp-keys": ".asc",
    "application/pgp-signature": ".asc",
    "application/pkcs7-mime": ".p7m",
    "application/pkcs7-signature": ".p7s",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": ".xlsx",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": ".docx",
    "application/xml": ".xml",
    "application/zip": ".zip",
    "audio/mpeg": ".mp3",
    "image/gif": ".gif",
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/svg+xml": ".svg",
    "image/webp": ".webp",
    "message/rfc822": ".eml",
    "text/calendar": ".ics",
    "text/csv": ".csv",
    "text/html": ".html",
    "text/plain": ".txt",
    "video/mp4": ".mp4",
}
"""A fixed table rather than ``mimetypes``, which reads the host's mime.types files."""

MEDIA_TYPES = {extension: media for media, extension in _EXTENSIONS.items()}
"""Extension to media type, for callers that must guess a type from a filename."""

# Regenerating an embedded message: CRLF, and header lines kept as they were written.
_REGENERATE = policy.default.clone(linesep="\r\n", refold_source="none")


def valid_part_id(part_id: str) -> bool:
    """Whether ``part_id`` is a section number this module can look up (``1``, ``2.1.3``)."""
    return _PART_ID.fullmatch(part_id) is not None and part_id.count(".") < MAX_DEPTH


def is_container(part: Message) -> bool:
    """A multipart whose parts were read; one without a readable boundary is a leaf."""
    return part.is_multipart() and part.get_content_maintype() == "multipart"


def media_type(part: Message) -> str:
    """The part's ``type/subtype``, lowercased, as served to clients.

    A multipart the parser could not split (no boundary, boundary never found)
    is served as the text it is (RFC 2046 section 5.1.1 gives it no other
    meaning); a type outside RFC 6838's syntax becomes
    ``application/octet-stream``.
    """
    ctype = part.get_content_type()
    if ctype.startswith("multipart/") and not part.is_multipart():
        return "text/plain"
    return ctype if _MEDIA_TYPE.fullmatch(ctype) else "application/octet-stream"


def charset(part: Message) -> str | None:
    """The declared charset, when it is a token that is safe to repeat in a header."""
    value = part.get_content_charset()
    return value if value and _CHARSET.fullmatch(value) else None


def find_part(message: Message, part_id: str) -> Message | None:
    """The part a section number names (see the module docstring), or ``None``.

    A multipart container is returned too; callers that want content skip it.
    """
    if not valid_part_id(part_id):
        return None
    node, is_message = message, True
    for number in (int(piece) for piece in part_id.split(".")):
        if not is_message and node.get_content_type() in ENCAPSULATED and node.is_multipart():
            inner = node.get_payload(0)
            if not isinstance(inner, Message):
                return None
            node, is_message = inner, True
        if is_container(node):
            children = node.get_payload()
            if not isinstance(children, list) or not 1 <= number <= len(children):
                return None
            child = children[number - 1]
            if not isinstance(child, Message):
                return None
            node, is_message = child, False
        elif is_message and number == 1:
            is_message = False  # a single-part message's body is its part 1
        else:
            return None
    return node


def part_bytes(part: Message) -> bytes:
    """The part's content with the transfer encoding undone (RFC 2045 section 6).

    ``message/*`` parts hold parsed messages, so their content is written out
    again: CRLF lines, header lines as received, ending in a line break (the
    one before the next delimiter belongs to the delimiter, RFC 2046 section
    5.1.1). Bad base64 or quoted-printable decodes as far as it goes; the
    parser notes a defect.

    Raises:
        RecursionError: a regenerated message nests deeper than the stack allows.
    """
    if part.is_multipart():
        try:
            whole = part.as_bytes(policy=_REGENERATE)
        except UnicodeError:
            # An 8-bit body the parser could not split comes back from get_payload()
            # decoded with errors="replace", which BytesGenerator cannot encode again.
            whole = part.as_string(policy=_REGENERATE).encode("utf-8", "surrogateescape")
        return split_head(whole)[1]
    data = part.get_payload(decode=True)
    return data if isinstance(data, bytes) else b""


def decode_text(data: bytes, declared: str | None) -> tuple[str, bool]:
    """Text from a part's bytes; ``(text, charset_known)``, never raising.

    Undeclared or ASCII-declared text is read as UTF-8 (ASCII's superset, and
    what unlabelled 8-bit mail nearly always is). Unknown charsets and codecs
    that are not text encodings fall back to UTF-8; bad bytes become U+FFFD.
    Line breaks come back as ``\\n``.
    """
    name = (declared or "utf-8").strip().lower()
    if name in ("us-ascii", "ascii"):
        name = "utf-8"
    known = True
    try:
        text = data.decode(name, "replace")
    except (LookupError, ValueError):  # unknown, not a text codec, or one refusing "replace"
        text, known = data.decode("utf-8", "replace"), False
    return clean(_NEWLINE.sub("\n", text)), known


def raw_filename(part: Message) -> str | None:
    """The filename the sender gave, decoded (RFC 2231 parameters, RFC 2047 words).

    A forwarded message without one is named after its subject.
    """
    try:
        name = part.get_filename()
    except ValueError:  # an RFC 2231 charset whose codec refuses errors="replace" (idna)
        raw = part.get_param("filename", None, "content-disposition") or part.get_param("name")
        name = collapse_rfc2231_value(("utf-8", "", raw[2])) if isinstance(raw, tuple) else None
    if name is None and part.get_content_type() in ENCAPSULATED and part.is_multipart():
        inner = part.get_payload(0)
        subject = inner.get("subject") if isinstance(inner, Message) else None
        if subject:
            name = f"{subject}.eml"
    return clean(str(name)) if name else None


def content_id(part: Message) -> str | None:
    """The ``Content-ID`` without its angle brackets, as ``cid:`` URLs write it (RFC 2392)."""
    value = part.get("content-id")
    if value is None:
        return None
    text = clean(str(value)).strip().removeprefix("<").removesuffix(">").strip()
    return text or None


def safe_filename(name: str | None, part_id: str, content_type: str) -> str:
    """A filename that is safe to offer for download and to write to disk.

    Keeps letters of any script. Takes the last path component (``/`` and
    ``\\`` both separate, so ``../../etc/passwd`` gives ``passwd``); drops
    control and invisible format characters (NUL, CR, LF, bidi overrides);
    replaces ``<>:|?*"`` with ``_``; collapses whitespace; strips leading and
    trailing dots and spaces (no hidden files, nothing Windows trims); prefixes
    Windows device names (``CON``, ``LPT1``...) with ``_``; cuts to
    :data:`MAX_FILENAME_BYTES` UTF-8 bytes keeping the extension. When nothing
    is left: ``attachment-<part_id>`` plus an extension for the content type
    (``.bin`` when unknown).

    Args:
        name: The decoded filename from the message, if any.
        part_id: The part's section number, for the fallback name.
        content_type: The part's media type, for the fallback extension.

    Returns:
        The safe name.
    """
    text = unicodedata.normalize("NFC", clean(name or ""))
    text = text.replace("\\", "/").rsplit("/", 1)[-1]
    text = "".join(ch for ch in text if unicodedata.category(ch) not in _DROPPED_CATEGORIES)
    text = _SPACES.sub(" ", text.translate(_RESERVED_CHARS)).strip(" .")
    if not text:
        return f"attachment-{part_id}{extension(content_type)}"
    stem, dot, suffix = text.rpartition(".")
    if not dot or len(suffix) > 16:
        stem, suffix = text, ""
    if stem.upper() in _DEVICE_NAMES:
        stem = f"_{stem}"
    tail = f".{suffix}" if suffix else ""
    room = MAX_FILENAME_BYTES - len(tail.encode("utf-8"))
    stem = stem.encode("utf-8")[:room].decode("utf-8", "ignore")  # never splits a character
    return (stem.rstrip(" .") or f"attachment-{part_id}") + tail


def ascii_filename(filename: str, part_id: str, content_type: str) -> str:
    """An ASCII stand-in for a safe filename, for the RFC 6266 ``filename=`` parameter.

    Accents are dropped and a few letters spelled out (``Grüße`` gives
    ``Grusse``); a name with no ASCII letters left becomes
    ``attachment-<part_id>`` with the same extension. ``%`` becomes ``_``
    (RFC 6266 appendix D: some agents percent-decode this field).
    """
    stem, dot, suffix = filename.rpartition(".")
    if not dot:
        stem, suffix = filename, ""

    def to_ascii(value: str) -> str:
        value = unicodedata.normalize("NFKD", value.translate(_ASCII_FOLDS))
        folded = value.encode("ascii", "ignore").decode("ascii")
        return _SPACES.sub(" ", folded.replace("%", "_")).strip(" .")

    ascii_stem, ascii_suffix = to_ascii(stem), to_ascii(suffix)
    if not ascii_stem.strip("_-"):
        ascii_stem = f"attachment-{part_id}"
    if suffix and not ascii_suffix:
        ascii_suffix = extension(content_type).lstrip(".")
    return f"{ascii_stem}.{ascii_suffix}" if ascii_suffix else ascii_stem


def content_disposition(filename: str, fallback: str, disposition: str = "attachment") -> str:
    """The ``Content-Disposition`` value for a download (RFC 6266 section 4, RFC 8187).

    Args:
        filename: A name from :func:`safe_filename` (no quotes, controls or separators).
        fallback: Its :func:`ascii_filename` form.
        disposition: ``attachment`` or ``inline``.

    Returns:
        For example ``attachment; filename="Grusse.pdf"; filename*=UTF-8''Gr%C3%BC%C3%9Fe.pdf``.
    """
    encoded = quote(filename, safe=_ATTR_CHARS, encoding="utf-8")
    return f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def extension(content_type: str) -> str:
    """The usual extension for a media type, ``.bin`` when unknown."""
    return _EXTENSIONS.get(content_type.lower(), ".bin")


def clean(text: str) -> str:
    """Text any consumer takes: raw bytes the parser kept as surrogates decoded as UTF-8, no NUL.

    The stdlib keeps undecodable header and body bytes as U+DC80-U+DCFF
    (``surrogateescape``); JSON encoders and PostgreSQL refuse lone surrogates
    and PostgreSQL refuses NUL.
    """
    if _SURROGATE.search(text):
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # surrogates that never were bytes
            raw = text.encode("utf-8", "replace")
        text = raw.decode("utf-8", "replace")
    return text.replace("\x00", "") if "\x00" in text else text
