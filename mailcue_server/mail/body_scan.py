"""The light pass over a message body that the index makes on the SMTP hot path.

It walks the parts of the one MIME tree (:mod:`mailcue_server.mail.tree`,
byte ranges, nothing decoded) and decodes at most
:data:`PREVIEW_SCAN_BYTES` of one text part, noting on the way whether the
message has attachments or is signed or encrypted. The
full ``policy.default`` parse waits until someone opens the message
(STACK-NOTES, "Parsing mail on the hot path"); :mod:`mailcue_server.mail.mime`
follows the same attachment rules, so both agree on ``has_attachments``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from email.message import Message

from mailcue_server.mail import tree

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


def scan_body(root: tree.Part) -> BodyScan:
    """Walk the parts of a message parsed by :func:`.tree.parse`.

    Never raises on malformed mail: what it cannot read is skipped.
    """
    scan = BodyScan()
    _walk(root, 0, scan, in_related=False)
    return scan


def _walk(part: tree.Part, depth: int, scan: BodyScan, *, in_related: bool) -> None:
    scan.parts += 1
    ctype = part.media_type
    if part.is_multipart:
        _walk_multipart(part, ctype, depth, scan)
        return
    if ctype in _SMIME_TYPES:
        if (part.param(b"smime-type") or b"").lower() == b"signed-data":
            scan.is_signed = True
        else:
            scan.is_encrypted = True
        return
    if ctype in _SIGNATURE_TYPES:
        scan.is_signed = True
        return
    disposition_value = part.header.first(b"content-disposition") or b""
    disposition = disposition_value.split(b";", 1)[0].strip().lower()
    if disposition == b"attachment" or (
        disposition != b"inline"
        and not in_related
        and ctype not in ("text/plain", "text/html")
        and (not ctype.startswith("text/") or _has_filename(part))
    ):
        scan.has_attachments = True
        return
    if ctype == "text/plain" and scan.plain is None:
        scan.plain = _decoded_text(part, scan)
    elif ctype == "text/html" and scan.html is None:
        scan.html = _decoded_text(part, scan)


def _walk_multipart(part: tree.Part, ctype: str, depth: int, scan: BodyScan) -> None:
    if ctype == "multipart/encrypted":
        scan.is_encrypted = True  # RFC 3156 section 4: the parts are control data and ciphertext
        return
    if ctype == "multipart/signed":
        scan.is_signed = True
    if depth >= MAX_DEPTH:
        return
    for index, child in enumerate(part.children):
        if scan.parts >= MAX_PARTS:
            return
        if ctype == "multipart/signed" and index > 0:
            scan.parts += 1  # RFC 1847 section 2.1: the second part is the signature
            continue
        # RFC 2387: parts after the root of multipart/related are its inline resources.
        resource = ctype == "multipart/related" and index > 0
        _walk(child, depth + 1, scan, in_related=resource)


def _decoded_text(part: tree.Part, scan: BodyScan) -> str:
    """Up to :data:`PREVIEW_SCAN_BYTES` of a text part, transfer-decoded and charset-decoded."""
    chunk = part.decoded_body(limit=PREVIEW_SCAN_BYTES)
    if _PGP_ENCRYPTED in chunk:
        scan.is_encrypted = True
    elif _PGP_SIGNED in chunk:
        scan.is_signed = True
    charset = (part.param(b"charset") or b"utf-8").decode("ascii", "replace")
    try:
        return chunk.decode(charset, "replace")
    except (LookupError, ValueError):  # unknown charset, or a name with a NUL in it
        return chunk.decode("utf-8", "replace")


def _has_filename(part: tree.Part) -> bool:
    """A ``filename`` or ``name`` parameter, in any form the stdlib reads (RFC 2231 too)."""
    if part.param(b"name") is not None:
        return True
    disposition = part.header.first(b"content-disposition")
    if disposition is None:
        return any(key.startswith(b"name*") for key, _ in part.params)
    message = Message()  # compat32: the library's RFC 2231 parameter parsing
    message["content-disposition"] = disposition.decode("utf-8", "surrogateescape")
    message["content-type"] = (part.header.first(b"content-type") or b"").decode(
        "utf-8", "surrogateescape"
    )
    return message.get_filename() is not None


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
