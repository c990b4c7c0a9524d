"""Writing FETCH responses (RFC 3501 section 7.4.2) straight to the output buffer.

pymap renders each FETCH item through generic helpers that run a runtime
``Protocol`` check per value; on a 5,000-message ``FETCH 1:* (UID FLAGS)``
that alone cost over half a second. :class:`FetchLine` writes the same
bytes directly: metadata items from the cached message, the rest from the
loaded message (``message.py``), loaded only when an item needs it and only
while the line is being written (one message in memory at a time).

A message whose bytes are gone by then (expunged by another session, which
this FETCH may not report, RFC 3501 section 7.4.1) gets no line at all, and
:class:`FetchReply` turns the tagged OK into ``NO [EXPUNGEISSUED]``: never an
OK with an empty ``BODY[] {0}`` a client would cache.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from pymap.bytes import WriteStream
from pymap.interfaces.message import LoadedMessageInterface
from pymap.parsing.response import ResponseOk, UntaggedResponse
from pymap.parsing.specials import FetchAttribute, FetchRequirement
from pymap.selected import SelectedMailbox

from mailcue_server.workers.imap.message import Message

_MONTHS = b"Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()
_METADATA = frozenset({b"UID", b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"})
_SECTIONED = frozenset({b"BODY", b"BODY.PEEK", b"RFC822", b"RFC822.HEADER", b"RFC822.TEXT"})


def internal_date(when: datetime) -> bytes:
    """``"02-Nov-2026 10:00:00 +0000"`` (RFC 3501 ``date-time``), whatever the locale."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    zone = when.strftime("%z").encode("ascii") or b"+0000"
    return b'"%02d-%b-%04d %02d:%02d:%02d %b"' % (
        when.day,
        _MONTHS[when.month - 1],
        when.year,
        when.hour,
        when.minute,
        when.second,
        zone,
    )


class Vanished:
    """Shared by one FETCH's lines: whether a message's bytes were gone when written."""

    __slots__ = ("seen",)

    def __init__(self) -> None:
        self.seen = False


class FetchReply(ResponseOk):
    """FETCH's tagged reply, decided after its lines are written (they load the bytes)."""

    def __init__(self, tag: bytes, text: bytes, vanished: Vanished) -> None:
        super().__init__(tag, text)
        self._vanished = vanished

    async def async_write(self, writer: WriteStream) -> None:
        for untagged in self._untagged:
            await untagged.async_write(writer)
        if self._vanished.seen:
            text = b"NO [EXPUNGEISSUED] Some of the requested messages no longer exist."
        else:
            text = self.text
        writer.write(b"%b %b\r\n" % (self.tag, text))


class FetchLine(UntaggedResponse):
    """``* <seq> FETCH (...)`` for one message.

    Args:
        seq: The message sequence number.
        message: The message, with its loader for the bytes.
        selected: The selected mailbox (its session flags add ``\\Recent``).
        attributes: The items asked for, in order (duplicates are written once).
        vanished: Told when the message's bytes are gone (the line is then left out).
    """

    def __init__(
        self,
        seq: int,
        message: Message,
        selected: SelectedMailbox,
        attributes: Sequence[FetchAttribute],
        vanished: Vanished,
    ) -> None:
        super().__init__()
        self.seq = seq
        self.message = message
        self._selected = selected
        self._vanished = vanished
        self._attributes = list(dict.fromkeys(attributes))
        self._loads = any(attr.value not in _METADATA for attr in self._attributes)

    @property
    def text(self) -> bytes:
        return b"%d FETCH" % self.seq

    async def async_write(self, writer: WriteStream) -> None:
        loaded = None
        if self._loads:
            requirement = FetchRequirement.reduce(attr.requirement for attr in self._attributes)
            loaded = await self.message.load_content(requirement)
            if not loaded.exists:
                self._vanished.seen = True
                return
        self._write(writer, loaded)

    def write(self, writer: WriteStream) -> None:
        """Without loading content (for logs): content items come out empty."""
        self._write(writer, None)

    def _write(self, writer: WriteStream, loaded: LoadedMessageInterface | None) -> None:
        writer.write(b"* %d FETCH (" % self.seq)
        for position, attr in enumerate(self._attributes):
            if position:
                writer.write(b" ")
            writer.write(attr.for_response.raw)
            writer.write(b" ")
            for chunk in self._value(attr, loaded):
                writer.write(chunk)
        writer.write(b")\r\n")

    def _value(
        self, attr: FetchAttribute, loaded: LoadedMessageInterface | None
    ) -> Sequence[bytes]:
        name = attr.value
        message = self.message
        if name == b"UID":
            return [b"%d" % message.uid]
        if name == b"FLAGS":
            flags = message.get_flags(self._selected.session_flags)
            return [b"(" + b" ".join(flag.value for flag in sorted(flags)) + b")"]
        if name == b"INTERNALDATE":
            return [internal_date(message.internal_date)]
        if name == b"RFC822.SIZE":
            return [b"%d" % message.size]
        if loaded is None:
            return [b"NIL"]
        if name == b"ENVELOPE":
            return [bytes(loaded.get_envelope_structure())]
        if name == b"BODYSTRUCTURE":
            return [bytes(loaded.get_body_structure().extended)]
        if name == b"BODY" and attr.section is None:
            return [bytes(loaded.get_body_structure())]
        if name in _SECTIONED or name.startswith(b"BINARY"):
            data = _section(attr, loaded, binary=name.startswith(b"BINARY"))
            if name == b"BINARY.SIZE":
                return [b"%d" % len(data)]
            prefix = b"~" if name.startswith(b"BINARY") else b""
            return [b"%b{%d}\r\n" % (prefix, len(data)), data]
        return [b"NIL"]  # EMAILID/THREADID: OBJECTID (RFC 8474) is not offered


def _section(attr: FetchAttribute, loaded: LoadedMessageInterface, *, binary: bool) -> bytes:
    """The octets a ``BODY[section]<partial>`` names (RFC 3501 section 6.4.5)."""
    section = attr.section
    if section is None:  # pragma: no cover - the parser gives every sectioned item one
        return b""
    parts = section.parts
    specifier = section.specifier
    if specifier is None:
        data = bytes(loaded.get_body(parts, binary))
    elif specifier == b"MIME":
        data = bytes(loaded.get_headers(parts))
    elif specifier == b"TEXT":
        data = bytes(loaded.get_message_text(parts))
    elif specifier == b"HEADER":
        data = bytes(loaded.get_message_headers(parts))
    else:
        inverse = specifier == b"HEADER.FIELDS.NOT"
        data = bytes(loaded.get_message_headers(parts, section.headers, inverse))
    partial = attr.partial
    if partial is None:
        return data
    end = None if partial.length is None else partial.start + partial.length
    return data[partial.start : end]
