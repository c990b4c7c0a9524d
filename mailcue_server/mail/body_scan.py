"""The light pass over a message body that the index makes on the SMTP hot path.

It splits MIME parts on their boundaries, reads each part's few header lines
and decodes at most :data:`PREVIEW_SCAN_BYTES` of one text part, noting on
the way whether the message has attachments or is signed or encrypted. The
full ``policy.default`` parse waits until someone opens the message
(STACK-NOTES, "Parsing mail on the hot path"); :mod:`mailcue_server.mail.mime`
follows the same attachment rules, so both agree on ``has_attachments``.
"""

from __future__ import annotations

import binascii
import functools
import html
import quopri
import re
from dataclasses import dataclass
from email.message import Message

from mailcue_server.mail.header_block import (
    Fields,
    fields_by_name,
    first_value,
    part_header_lines,
    split_head,
)

PREVIEW_SCAN_BYTES = 64 * 1024
MAX_DEPTH = 8
MAX_PARTS = 200

# ASCII whitespace (as str.isspace() has it) other than a single space; one
# substring test each is far cheaper than a regular expression over the text.
_OTHER_WHITESPACE = ("  ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x1f")
_HIDDEN_HTML = re.compile(r"<(script|style|head)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[^>]*>")
_PGP_ENCRYPTED = b"-----BEGIN PGP MESSAGE-----"
_PGP_SIGNED = b"-----BEGIN PGP SIGNED MESSAGE-----"
_SIGNATURE_TYPES = {"application/pgp-signature", "application/pkcs7-signature"}
_SMIME_TYPES = {"application/pkcs7-mime", "application/x-pkcs7-mime"}


@dataclass
class BodyScan:
    """What the body pass collects while it walks the MIME tree.

    Attributes:
        parts: MIME parts seen (at most :data:`MAX_PARTS` are walked).
        has_attachments: Whether a part is an attachment.
        is_signed: PGP/MIME, S/MIME or inline PGP signature.
        is_encrypted: PGP/MIME, S/MIME or inline PGP encryption.
        plain: The start of the first ``text/plain`` body part, decoded.
        html: The start of the first ``text/html`` body part, decoded.
    """

    parts: int = 0
    has_attachments: bool = False
    is_signed: bool = False
    is_encrypted: bool = False
    plain: str | None = None
    html: str | None = None

    def text(self) -> str:
        """The plain text (else the HTML's text), whitespace collapsed: preview and search."""
        source = self.plain if self.plain is not None else _html_to_text(self.html or "")
        return _collapse_whitespace(source)


def scan_body(fields: Fields, body: bytes) -> BodyScan:
    """Walk a message body whose top-level header fields are ``fields``.

    Never raises on malformed mail: what it cannot read is skipped.
    """
    scan = BodyScan()
    _walk(fields, body, 0, scan, in_related=False)
    return scan


def _walk(fields: Fields, body: bytes, depth: int, scan: BodyScan, *, in_related: bool) -> None:
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
    disposition = first_value(fields, "content-disposition").split(";", 1)[0].strip().lower()
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


def _walk_multipart(fields: Fields, ctype: str, body: bytes, depth: int, scan: BodyScan) -> None:
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
        part_fields = fields_by_name(part_header_lines(part_head), utf8=not part_head.isascii())
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


def _decoded_text(fields: Fields, body: bytes, scan: BodyScan) -> str:
    """Up to :data:`PREVIEW_SCAN_BYTES` of a text part, transfer-decoded and charset-decoded."""
    encoding = first_value(fields, "content-transfer-encoding").strip().lower()
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


def _content_type(fields: Fields) -> str:
    """RFC 2045 section 5.2: a missing or unreadable type means ``text/plain``."""
    value = first_value(fields, "content-type").split(";", 1)[0].strip().lower()
    return value if value.count("/") == 1 else "text/plain"


def _param(fields: Fields, header: str, name: str) -> str:
    """One parameter of a structured header; the quick way for plain ``name=value``.

    RFC 2231 forms (``name*=``, ``name*0=``) go to the library's full parser.
    """
    value = first_value(fields, header)
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
