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
import functools
import itertools
import quopri
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

MAX_DEPTH = 32
MAX_PARTS = 1000

ENCAPSULATED = frozenset({(b"message", b"rfc822"), (b"message", b"global")})
"""Types whose body is a whole message."""

_FOLDING = re.compile(rb"\r?\n(?=[ \t])")
_LINE_END = re.compile(rb"\r?\n\Z")
_QUOTED_PAIR = re.compile(rb"\\(.)", re.DOTALL)
_FIELD_START = re.compile(rb"^[^ \t\r\n]", re.MULTILINE)
_QUOTED = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_PART_ID = re.compile(r"[1-9][0-9]{0,8}(?:\.[1-9][0-9]{0,8})*")


class HeaderField(NamedTuple):
    """One header field: its lowercased name and the range of its raw lines."""

    name: bytes
    start: int
    end: int


@dataclass(slots=True)
class Header:
    """A header section over the raw bytes it came from; fields are listed when first asked for.

    Attributes:
        raw: The whole message.
        start: Where the header begins.
        end: Where the body begins (after the empty line).
        block_end: Where the empty line begins (the fields end there).
    """

    raw: bytes
    start: int
    end: int
    block_end: int
    _fields: list[HeaderField] | None = None

    @property
    def fields(self) -> list[HeaderField]:
        """Every field, in order; a line that is no field is skipped."""
        if self._fields is None:
            self._fields = _fields(self.raw, self.start, self.block_end)
        return self._fields

    def values(self, name: bytes) -> list[bytes]:
        """Every value of a field (case-insensitive name), unfolded and trimmed."""
        wanted = name.lower()
        return [self.value(f) for f in self.fields if f.name == wanted]

    def first(self, name: bytes) -> bytes | None:
        """The first value of a field, or ``None`` when the field is absent.

        Until the fields are listed, one search finds it: the tree reads a
        few MIME fields of every part on the SMTP hot path.
        """
        if self._fields is not None:
            wanted = name.lower()
            for f in self._fields:
                if f.name == wanted:
                    return self.value(f)
            return None
        found = _field_pattern(name.lower()).search(self.raw, self.start, self.block_end)
        if found is None:
            return None
        after = found.end()
        newline = self.raw.find(b"\n", after, self.block_end)
        following = (
            None if newline < 0 else _FIELD_START.search(self.raw, newline + 1, self.block_end)
        )
        end = self.block_end if following is None else following.start()
        return unfold(self.raw[after:end]).strip()

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
    """

    header: Header
    body_start: int
    end: int
    maintype: bytes
    subtype: bytes
    params: list[tuple[bytes, bytes]]
    children: list[Part] = field(default_factory=list)
    _inner: Part | None = None
    _pending: tuple[_Parser, int] | None = None

    @property
    def message(self) -> Part | None:
        """The message a ``message/rfc822`` body holds (parsed when first asked for).

        The index never looks inside an attached message, so it does not pay for one.
        """
        if self._pending is not None:
            parser, depth = self._pending
            self._pending = None
            self._inner = parser.entity(self.body_start, self.end, depth=depth, digest=False)
        return self._inner

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
            compact = b"".join(body.split()).rstrip(b"=")
            if len(compact) % 4 == 1:  # a lone last character holds no whole octet
                compact = compact[:-1]
            try:  # padding restored, as the stdlib does for a cut-off part
                return binascii.a2b_base64(compact + b"=" * (-len(compact) % 4))
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
    if b"(" not in value and not any(b";" in quoted for quoted in _QUOTED.findall(value)):
        return value.split(b";")  # the usual case, without a step per byte
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
    """The header from ``start`` to the empty line (or to ``end`` when there is none)."""
    if raw.startswith(b"\n", start) or raw.startswith(b"\r\n", start, end):
        return Header(raw, start, start + (1 if raw[start] == 10 else 2), start)
    crlf = raw.find(b"\n\r\n", start, end)
    lf = raw.find(b"\n\n", start, end if crlf < 0 else crlf + 2)
    candidates = [found for found in (crlf, lf) if found >= 0]
    if not candidates:
        return Header(raw, start, end, end)
    cut = min(candidates) + 1
    return Header(raw, start, cut + (1 if raw[cut] == 10 else 2), cut)


def _fields(raw: bytes, start: int, cut: int) -> list[HeaderField]:
    """Field starts found by one regular expression over the block, not line by line."""
    starts = [match.start() for match in _FIELD_START.finditer(raw, start, cut)]
    starts.append(cut)
    fields: list[HeaderField] = []
    for field_start, field_end in itertools.pairwise(starts):
        newline = raw.find(b"\n", field_start, field_end)
        colon = raw.find(b":", field_start, field_end if newline < 0 else newline)
        if colon > field_start:
            fields.append(
                HeaderField(raw[field_start:colon].strip().lower(), field_start, field_end)
            )
    return fields


@functools.cache
def _field_pattern(name: bytes) -> re.Pattern[bytes]:
    """A field named ``name`` at the start of a line (any case; blanks before the colon)."""
    return re.compile(rb"^" + re.escape(name) + rb"[ \t]*:", re.IGNORECASE | re.MULTILINE)


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
            part._pending = (self, depth + 1)
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
