"""Where each MIME part of a message lies in its raw bytes: the parser FETCH needs (pure).

IMAP addresses message parts by number (RFC 3501 section 6.4.5) and returns
their header and body octets exactly as stored. This module finds those
ranges without copying or decoding anything:

- A part's header runs to the first empty line; the empty line belongs to the
  header (``BODY[HEADER]`` ends with it, RFC 3501 section 6.4.5).
- In a multipart body, the line break before a boundary delimiter belongs to
  the delimiter, not to the part before it (RFC 2046 section 5.1.1), so
  ``BODY[1]`` of ``...hello\\r\\n--b`` is ``hello``.
- A ``message/rfc822`` body is itself a message with its own parts.
- Line endings are whatever the message uses (CRLF, or LF alone).

Header values stay raw bytes; :func:`unfold` removes folding only.
Nesting and part counts are capped so a hostile message cannot make the
parser recurse or allocate without bound.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

MAX_DEPTH = 32
MAX_PARTS = 1000

_FOLDING = re.compile(rb"\r?\n(?=[ \t])")
_LINE_END = re.compile(rb"\r?\n\Z")
_QUOTED_PAIR = re.compile(rb"\\(.)", re.DOTALL)


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
        return [self._value(f) for f in self.fields if f.name == wanted]

    def first(self, name: bytes) -> bytes | None:
        """The first value of a field, or ``None`` when the field is absent."""
        wanted = name.lower()
        for f in self.fields:
            if f.name == wanted:
                return self._value(f)
        return None

    def lines(self, names: frozenset[bytes], *, inverse: bool = False) -> bytes:
        """The raw lines of the fields named (or, ``inverse``, not named), in order."""
        return b"".join(
            self.raw[f.start : f.end] for f in self.fields if (f.name.upper() in names) != inverse
        )

    def _value(self, f: HeaderField) -> bytes:
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
    def is_multipart(self) -> bool:
        return self.maintype == b"multipart"

    def param(self, name: bytes) -> bytes | None:
        for key, value in self.params:
            if key == name:
                return value
        return None


def unfold(value: bytes) -> bytes:
    """Remove header folding (RFC 5322 section 2.2.3) and the final line break."""
    return _FOLDING.sub(b"", _LINE_END.sub(b"", value))


def parse(raw: bytes) -> Part:
    """Parse a whole message into its part tree."""
    return _Parser(raw).entity(0, len(raw), depth=0, digest=False)


def parse_header(raw: bytes, start: int = 0, end: int | None = None) -> Header:
    """Only the header section of the message (or entity) at ``start``."""
    return _header(raw, start, len(raw) if end is None else end)


def resolve(root: Part, numbers: Sequence[int]) -> Part | None:
    """The part a section number names (RFC 3501 section 6.4.5), or ``None``.

    A non-multipart message has only part 1, itself. The parts of a
    ``message/rfc822`` part are those of the message it holds.
    """
    node = root
    for number in numbers:
        if node.message is not None:
            node = node.message
        if node.children:
            if not 1 <= number <= len(node.children):
                return None
            node = node.children[number - 1]
        elif number != 1:
            return None
    return node


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
    for line_start, line_end in _lines(raw, start, end):
        position = line_end
        line = raw[line_start:line_end]
        if line in (b"\r\n", b"\n"):
            break
        if line[:1] in (b" ", b"\t") and current is not None:
            current = HeaderField(current.name, current.start, line_end)
            header.fields[-1] = current
            continue
        colon = line.find(b":")
        if colon > 0:
            current = HeaderField(line[:colon].strip().lower(), line_start, line_end)
            header.fields.append(current)
        else:
            current = None
    header.end = position
    return header


def _lines(raw: bytes, start: int, end: int) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each line, its line break included."""
    position = start
    while position < end:
        newline = raw.find(b"\n", position, end)
        line_end = end if newline < 0 else newline + 1
        yield position, line_end
        position = line_end


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
            part.children = [
                self.entity(s, e, depth=depth + 1, digest=digest_parts) for s, e in ranges
            ]
        elif (maintype, subtype) == (b"message", b"rfc822"):
            part.message = self.entity(header.end, end, depth=depth + 1, digest=False)
        return part

    def _split(self, start: int, end: int, boundary: bytes) -> list[tuple[int, int]]:
        """Body ranges between the delimiter lines of ``boundary`` (RFC 2046 section 5.1.1)."""
        delimiter = b"--" + boundary
        ranges: list[tuple[int, int]] = []
        part_start: int | None = None
        for line_start, line_end in _lines(self.raw, start, end):
            if not self.raw.startswith(delimiter, line_start, line_end):
                continue
            rest = self.raw[line_start + len(delimiter) : line_end].rstrip(b" \t\r\n")
            if rest not in (b"", b"--"):
                continue
            if part_start is not None:
                ranges.append((part_start, _before_line_break(self.raw, part_start, line_start)))
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
