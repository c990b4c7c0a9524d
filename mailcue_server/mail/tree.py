"""The one MIME tree of a message: every part as byte ranges of the stored octets (pure).

A message is parsed once into :class:`Part` nodes that point into the raw
bytes without copying or decoding them. Every view reads this tree: IMAP
sections and BODYSTRUCTURE (``workers/imap``), and the index's body pass
(:mod:`.body_scan`). Rules it follows:

- A part's header runs to the first empty line, which belongs to the header
  (``BODY[HEADER]`` ends with it, RFC 3501 section 6.4.5).
- In a multipart body the line break before a delimiter line belongs to the
  delimiter (RFC 2046 section 5.1.1), so ``BODY[1]`` of ``hello\\r\\n--b`` is
  ``hello``; a delimiter line may carry trailing white space.
- A ``message/rfc822`` (or ``message/global``, RFC 6532 section 3.7) body is a
  message with parts of its own (:attr:`Part.message`).
- Line endings are whatever the message uses (CRLF, or LF alone).

Section numbers (RFC 3501 section 6.4.5, RFC 9051 section 6.4.5) are
resolved by :func:`find`: the parts of a multipart are numbered from 1; a
message that is not multipart has one part, ``1``, its body; a part that
holds a message is numbered like that message. Nesting and part counts are
capped so a hostile message cannot make the parser recurse or allocate
without bound; what is beyond the caps reads as text.
"""

from __future__ import annotations

import binascii
import quopri
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

MAX_DEPTH = 32
MAX_PARTS = 1000

ENCAPSULATED = frozenset({(b"message", b"rfc822"), (b"message", b"global")})
"""Types whose body is a whole message."""

_FOLDING = re.compile(rb"\r?\n(?=[ \t])")
_LINE_END = re.compile(rb"\r?\n\Z")
_QUOTED_PAIR = re.compile(rb"\\(.)", re.DOTALL)
_PART_ID = re.compile(r"[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,8})*")


@dataclass(frozen=True, slots=True)
class HeaderField:
    """One header field: its lowercased name and the range of its raw lines."""

    name: bytes
    start: int
    end: int


@dataclass(slots=True)
class Header:
    """A header section: the fields in order, over the raw bytes they came from."""

    raw: bytes
    start: int
    end: int
    fields: list[HeaderField] = field(default_factory=list)

    def values(self, name: bytes) -> list[bytes]:
        """Every value of a field (case-insensitive name), unfolded and trimmed."""
        wanted = name.lower()
        return [self.value(f) for f in self.fields if f.name == wanted]

    def first(self, name: bytes) -> bytes | None:
        """The first value of a field, or ``None`` when the field is absent."""
        wanted = name.lower()
        for f in self.fields:
            if f.name == wanted:
                return self.value(f)
        return None

    def lines(self, names: frozenset[bytes], *, inverse: bool = False) -> bytes:
        """The raw lines of the fields named (uppercase names) or, ``inverse``, not named."""
        return b"".join(
            self.raw[f.start : f.end] for f in self.fields if (f.name.upper() in names) != inverse
        )

    def value(self, f: HeaderField) -> bytes:
        """One field's value, unfolded and trimmed."""
        line = self.raw[f.start : f.end]
        return unfold(line[line.index(b":") + 1 :]).strip()


@dataclass(slots=True)
class Part:
    """One MIME entity: its header, its body and, when it has them, its parts.

    Attributes:
        header: The part's header section (``start`` to ``body_start``).
        body_start: Where the body begins.
        end: Where the body ends (exclusive).
        maintype: The media type, lowercased (``text`` when unspecified).
        subtype: The media subtype, lowercased.
        params: Content-Type parameters as ``(lowercased name, raw value)``.
        children: The parts of a multipart body.
        message: The message a ``message/rfc822`` body holds.
    """

    header: Header
    body_start: int
    end: int
    maintype: bytes
    subtype: bytes
    params: list[tuple[bytes, bytes]]
    children: list[Part] = field(default_factory=list)
    message: Part | None = None

    @property
    def start(self) -> int:
        return self.header.start

    @property
    def raw(self) -> bytes:
        """The whole message the part belongs to."""
        return self.header.raw

    @property
    def is_multipart(self) -> bool:
        return self.maintype == b"multipart"

    @property
    def media_type(self) -> str:
        """``type/subtype`` as text (lowercased when parsed)."""
        return (self.maintype + b"/" + self.subtype).decode("ascii", "replace")

    def param(self, name: bytes) -> bytes | None:
        for key, value in self.params:
            if key == name:
                return value
        return None

    def head(self) -> bytes:
        """The header octets, the empty line included."""
        return self.raw[self.start : self.body_start]

    def body(self) -> bytes:
        """The body octets, exactly as stored."""
        return self.raw[self.body_start : self.end]

    def decoded_body(self, limit: int | None = None) -> bytes:
        """The body with a base64 or quoted-printable transfer encoding undone (RFC 2045 6).

        Bad encodings decode as far as they go. ``limit`` reads only the first
        octets of the stored body (a preview).
        """
        end = self.end if limit is None else min(self.end, self.body_start + limit)
        body = self.raw[self.body_start : end]
        encoding = (self.header.first(b"content-transfer-encoding") or b"").strip().lower()
        if encoding == b"base64":
            compact = b"".join(body.split())
            try:
                return binascii.a2b_base64(compact[: len(compact) - len(compact) % 4])
            except binascii.Error:
                return b""
        if encoding == b"quoted-printable":
            return quopri.decodestring(body)
        return body


def unfold(value: bytes) -> bytes:
    """Remove header folding (RFC 5322 section 2.2.3) and the final line break."""
    return _FOLDING.sub(b"", _LINE_END.sub(b"", value))


def parse(raw: bytes) -> Part:
    """Parse a whole message into its part tree (never raises on malformed mail)."""
    return _Parser(raw).entity(0, len(raw), depth=0, digest=False)


def parse_header(raw: bytes, start: int = 0, end: int | None = None) -> Header:
    """Only the header section of the message (or entity) at ``start``."""
    return _header(raw, start, len(raw) if end is None else end)


def find(root: Part, numbers: Sequence[int]) -> Part | None:
    """The part a section number names (RFC 3501 section 6.4.5), or ``None``.

    ``[]`` is the message itself. Each number picks a part of the current
    message or multipart: of a multipart, its nth child; of a message that
    is not multipart, only ``1``, its body. Numbers after a part that holds
    a message index that message; after a multipart, its children.
    """
    entity, part = root, root
    for position, number in enumerate(numbers):
        if position:
            if part.message is not None:
                entity = part.message
            elif part.children:
                entity = part
            else:
                return None
        if entity.children:
            if not 1 <= number <= len(entity.children):
                return None
            part = entity.children[number - 1]
        elif number == 1:
            part = entity  # the body of a message that is not multipart
        else:
            return None
    return part


def valid_part_id(part_id: str) -> bool:
    """Whether ``part_id`` is a section number such as ``1`` or ``2.1.3``."""
    return _PART_ID.fullmatch(part_id) is not None and part_id.count(".") < MAX_DEPTH


def find_id(root: Part, part_id: str) -> Part | None:
    """:func:`find` for a dotted id (``"2.1"``); ``None`` when malformed or absent."""
    if not valid_part_id(part_id):
        return None
    return find(root, [int(piece) for piece in part_id.split(".")])


def walk(root: Part) -> Iterator[tuple[str, Part, int]]:
    """Every part below the message, depth first, as ``(section id, part, depth)``.

    A message that is not multipart yields its body as part ``1``; the
    message held by a ``message/rfc822`` part is not entered (callers that
    want its parts call :func:`walk` on :attr:`Part.message`).
    """
    if not root.children:
        yield "1", root, 0
        return
    stack: list[tuple[str, Part, int]] = [
        (str(number), child, 1) for number, child in reversed(list(enumerate(root.children, 1)))
    ]
    while stack:
        part_id, part, depth = stack.pop()
        yield part_id, part, depth
        stack.extend(
            (f"{part_id}.{number}", child, depth + 1)
            for number, child in reversed(list(enumerate(part.children, 1)))
        )


def split_params(value: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """``type/subtype; a=b; c="d"`` into the lowercased first token and its parameters.

    Parameter values are unquoted; RFC 2231 names (``name*``) are kept as written.
    """
    pieces = _split_unquoted(value)
    params: list[tuple[bytes, bytes]] = []
    for piece in pieces[1:]:
        name, sep, raw_value = piece.partition(b"=")
        name = name.strip().lower()
        if not sep or not name:
            continue
        raw_value = raw_value.strip()
        if raw_value.startswith(b'"') and raw_value.endswith(b'"') and len(raw_value) > 1:
            raw_value = _QUOTED_PAIR.sub(rb"\1", raw_value[1:-1])
        params.append((name, raw_value))
    return pieces[0].strip().lower(), params


def _split_unquoted(value: bytes) -> list[bytes]:
    """Split on ``;`` outside quoted strings, dropping comments (RFC 2045 section 5.1)."""
    if b'"' not in value and b"(" not in value:
        return value.split(b";")
    pieces: list[bytes] = []
    current = bytearray()
    quoted = escaped = False
    depth = 0
    for byte in value:
        char = bytes((byte,))
        if escaped:
            escaped = False
        elif char == b"\\" and (quoted or depth):
            escaped = True
        elif quoted:
            quoted = char != b'"'
        elif depth:
            depth += {b"(": 1, b")": -1}.get(char, 0)
            continue
        elif char == b"(":
            depth = 1
            continue
        elif char == b'"':
            quoted = True
        elif char == b";":
            pieces.append(bytes(current))
            current.clear()
            continue
        if not depth:
            current += char
    pieces.append(bytes(current))
    return pieces


def _header(raw: bytes, start: int, end: int) -> Header:
    header = Header(raw, start, end)
    position = start
    current: HeaderField | None = None
    while position < end:
        newline = raw.find(b"\n", position, end)
        line_end = end if newline < 0 else newline + 1
        line_start, position = position, line_end
        first = raw[line_start : line_start + 1]
        if first in (b"\r", b"\n") and line_end - line_start <= 2:
            break  # the empty line (CRLF or LF) ends the header
        if first in (b" ", b"\t") and current is not None:
            current = HeaderField(current.name, current.start, line_end)
            header.fields[-1] = current
            continue
        colon = raw.find(b":", line_start, line_end)
        if colon > line_start:
            current = HeaderField(raw[line_start:colon].strip().lower(), line_start, line_end)
            header.fields.append(current)
        else:
            current = None
    header.end = position
    return header


class _Parser:
    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self.parts = 0

    def entity(self, start: int, end: int, *, depth: int, digest: bool) -> Part:
        self.parts += 1
        header = _header(self.raw, start, end)
        content_type = header.first(b"content-type")
        maintype, subtype, params = _media_type(content_type, digest=digest)
        part = Part(header, header.end, end, maintype, subtype, params)
        if depth >= MAX_DEPTH or self.parts >= MAX_PARTS:
            return _as_text(part) if part.is_multipart else part
        if part.is_multipart:
            boundary = part.param(b"boundary")
            ranges = self._split(header.end, end, boundary) if boundary else []
            if not ranges:
                return _as_text(part)
            digest_parts = subtype == b"digest"
            for s, e in ranges:
                if self.parts >= MAX_PARTS:
                    break
                part.children.append(self.entity(s, e, depth=depth + 1, digest=digest_parts))
        elif (maintype, subtype) in ENCAPSULATED:
            part.message = self.entity(header.end, end, depth=depth + 1, digest=False)
        return part

    def _split(self, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
        """Body ranges between the delimiter lines of ``boundary`` (RFC 2046 section 5.1.1).

        Found with ``bytes.find`` rather than line by line: a large base64
        attachment is one search, not one Python step per line.
        """
        raw = self.raw
        delimiter = b"--" + boundary
        ranges: list[tuple[int, int]] = []
        part_start: int | None = None
        position = start
        while (found := raw.find(delimiter, position, end)) >= 0:
            newline = raw.find(b"\n", found, end)
            line_end = end if newline < 0 else newline + 1
            position = line_end
            if found > start and raw[found - 1 : found] != b"\n":
                continue  # not at the start of a line
            rest = raw[found + len(delimiter) : line_end].rstrip(b" \t\r\n")
            if rest not in (b"", b"--"):
                continue
            if part_start is not None:
                ranges.append((part_start, _before_line_break(raw, part_start, found)))
            if rest == b"--":
                return ranges
            part_start = line_end
        if part_start is not None:  # no close delimiter: the last part runs to the end
            ranges.append((part_start, end))
        return ranges


def _before_line_break(raw: bytes, floor: int, position: int) -> int:
    if position > floor and raw[position - 1 : position] == b"\n":
        position -= 1
        if position > floor and raw[position - 1 : position] == b"\r":
            position -= 1
    return position


def _media_type(
    value: bytes | None, *, digest: bool
) -> tuple[bytes, bytes, list[tuple[bytes, bytes]]]:
    """RFC 2045 section 5.2 defaults: text/plain (message/rfc822 in a digest, RFC 2046 5.1.5)."""
    if value is None:
        if digest:
            return b"message", b"rfc822", []
        return b"text", b"plain", [(b"charset", b"us-ascii")]
    kind, params = split_params(value)
    maintype, slash, subtype = kind.partition(b"/")
    maintype, subtype = maintype.strip(), subtype.strip()
    if not slash or not maintype or not subtype:
        return b"text", b"plain", [(b"charset", b"us-ascii")]
    return maintype, subtype, params


def _as_text(part: Part) -> Part:
    """A multipart we cannot split (no boundary, no delimiter, too deep) reads as text/plain."""
    part.maintype, part.subtype = b"text", b"plain"
    part.params = [(key, value) for key, value in part.params if key != b"boundary"]
    return part
