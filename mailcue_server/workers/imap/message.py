"""Messages as pymap sees them: metadata from the store, content loaded in batches.

:class:`Message` is what a session caches per UID (flags, internal date,
size). Its content is loaded only when a command needs the bytes, through a
:class:`ContentLoader` that fetches the next messages of the same command in
one query, so ``FETCH 1:500 ENVELOPE`` is a handful of queries, not 500.

:class:`LoadedMessage` answers every FETCH item from the exact stored bytes
(``mime.py`` finds the parts, ``structure.py`` writes ENVELOPE and
BODYSTRUCTURE). pymap's own versions rewrite the Date, decode 8-bit subjects,
send ``""`` for missing names and count MIME headers into part sizes; these
replace them.
"""

from __future__ import annotations

import binascii
import functools
import quopri
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from email.errors import HeaderParseError
from email.header import decode_header, make_header

from pymap.bytes import Writeable, WriteStream
from pymap.interfaces.message import LoadedMessageInterface
from pymap.message import BaseMessage
from pymap.parsing.primitives import List
from pymap.parsing.response.fetch import BodyStructure, EnvelopeStructure
from pymap.parsing.specials import FetchRequirement
from pymap.parsing.specials.flag import Answered, Deleted, Draft, Flag, Flagged, Seen

from mailcue_server.store import changes
from mailcue_server.store.changes import MessageMeta
from mailcue_server.store.mail_models import SystemFlag
from mailcue_server.workers.imap import mime, structure

BATCH_MESSAGES = 200
BATCH_BYTES = 8 * 1024 * 1024
"""Most messages, and bytes, one content query loads."""

_SYSTEM_FLAGS = {
    SystemFlag.SEEN: Seen,
    SystemFlag.ANSWERED: Answered,
    SystemFlag.FLAGGED: Flagged,
    SystemFlag.DELETED: Deleted,
    SystemFlag.DRAFT: Draft,
}


@functools.lru_cache(maxsize=1024)
def flags_from_store(bits: int, keywords: str) -> frozenset[Flag]:
    """The store's bitmask and keywords as pymap flags (few distinct sets: cached)."""
    found = [flag for bit, flag in _SYSTEM_FLAGS.items() if bits & bit]
    found.extend(Flag(keyword.encode("utf-8", "replace")) for keyword in keywords.split())
    return frozenset(found)


def flag_names(flags: Iterable[Flag]) -> list[str]:
    """pymap flags as the names the store takes (``\\Recent`` is dropped by the store)."""
    return [flag.value.decode("utf-8", "replace") for flag in flags]


class ContentLoader:
    """Loads the raw bytes of the messages one command touches, a bounded batch at a time.

    Args:
        folder_id: The folder the messages are in.
        plan: ``(uid, size)`` in the order the command will read them; a UID
            outside the plan is loaded alone.
        wanted: ``False`` when the command needs no bytes at all (FLAGS, UID,
            INTERNALDATE, RFC822.SIZE come from the metadata).
    """

    def __init__(
        self, folder_id: int, plan: Sequence[tuple[int, int]] = (), *, wanted: bool = True
    ) -> None:
        self.folder_id = folder_id
        self.wanted = wanted
        self._plan = list(plan)
        self._index = {uid: position for position, (uid, _) in enumerate(self._plan)}
        self._batch: dict[int, bytes] = {}

    async def raw(self, uid: int) -> bytes | None:
        """The message's bytes, or ``None`` when it was expunged meanwhile."""
        if uid in self._batch:
            return self._batch.pop(uid)
        position = self._index.get(uid)
        if position is None:
            return (await changes.raw_messages(self.folder_id, [uid])).get(uid)
        batch: list[int] = []
        total = 0
        for next_uid, size in self._plan[position:]:
            if batch and (len(batch) >= BATCH_MESSAGES or total + size > BATCH_BYTES):
                break
            batch.append(next_uid)
            total += size
        self._batch = await changes.raw_messages(self.folder_id, batch)
        return self._batch.pop(uid, None)


class Message(BaseMessage):
    """One message of the selected folder: metadata, and a way to load its bytes."""

    __slots__ = ("_loader", "size")

    def __init__(
        self,
        uid: int,
        internal_date: datetime,
        flags: Iterable[Flag],
        *,
        size: int,
        loader: ContentLoader,
        expunged: bool = False,
    ) -> None:
        super().__init__(uid, internal_date, flags, expunged=expunged)
        self.size = size
        self._loader = loader

    @classmethod
    def from_meta(cls, meta: MessageMeta, loader: ContentLoader) -> Message:
        flags = flags_from_store(meta.flags, meta.keywords)
        return cls(meta.uid, meta.internal_date, flags, size=meta.size, loader=loader)

    def with_loader(
        self, loader: ContentLoader, *, flags: Iterable[Flag] | None = None, expunged: bool = False
    ) -> Message:
        """The same message read through another loader (and with fresh flags)."""
        chosen = self.permanent_flags if flags is None else flags
        return Message(
            self.uid,
            self.internal_date,
            chosen,
            size=self.size,
            loader=loader,
            expunged=expunged,
        )

    async def load_content(self, requirement: FetchRequirement) -> LoadedMessage:
        return LoadedMessage(self, requirement, await self.content(requirement))

    async def content(self, requirement: FetchRequirement) -> bytes | None:
        """The raw bytes if ``requirement`` needs them and the loader fetches any."""
        if not self._loader.wanted or requirement.has_none(FetchRequirement.CONTENT):
            return None
        return await self._loader.raw(self.uid)


class LoadedMessage(LoadedMessageInterface):
    """FETCH's view of one message's exact bytes (RFC 3501 section 6.4.5)."""

    __slots__ = ("_header", "_message", "_raw", "_requirement", "_tree")

    def __init__(self, message: Message, requirement: FetchRequirement, raw: bytes | None) -> None:
        self._message = message
        self._requirement = requirement
        self._raw = raw
        self._tree: mime.Part | None = None
        self._header: mime.Header | None = None

    @property
    def message(self) -> Message:
        return self._message

    @property
    def requirement(self) -> FetchRequirement:
        return self._requirement

    @property
    def exists(self) -> bool:
        """False when the bytes were wanted but the message was expunged meanwhile."""
        return self._raw is not None or self._requirement.has_none(FetchRequirement.CONTENT)

    def __bytes__(self) -> bytes:
        return self._raw or b""

    def get_header(self, name: bytes) -> Sequence[str]:
        header = self._top_header()
        return [] if header is None else [decode_text(v) for v in header.values(name)]

    def get_headers(self, section: Sequence[int]) -> Writeable:
        part = self._part(section)
        return _wrap(None if part is None else part.header.raw[part.start : part.body_start])

    def get_message_headers(
        self,
        section: Sequence[int] | None = None,
        subset: Collection[bytes] | None = None,
        inverse: bool = False,
    ) -> Writeable:
        target = self._message_part(section)
        if target is None:
            return Writeable.empty()
        if subset is None:
            return _wrap(target.header.raw[target.start : target.body_start])
        names = frozenset(name.upper() for name in subset)
        return _wrap(target.header.lines(names, inverse=inverse) + b"\r\n")

    def get_message_text(self, section: Sequence[int] | None = None) -> Writeable:
        target = self._message_part(section)
        return _wrap(None if target is None else _body(target))

    def get_body(self, section: Sequence[int] | None = None, binary: bool = False) -> Writeable:
        if not section:
            if binary and self._raw is not None:
                root = self._root()
                header = root.header.raw[root.start : root.body_start]
                return _wrap(header + decode_transfer(root, _body(root)))
            return _wrap(self._raw)
        part = self._part(section)
        if part is None:
            return Writeable.empty()
        body = _body(part)
        return _wrap(decode_transfer(part, body) if binary else body)

    def get_size(self, section: Sequence[int] | None = None) -> int:
        if not section:
            return self._message.size if self._raw is None else len(self._raw)
        part = self._part(section)
        return 0 if part is None else part.end - part.body_start

    def get_envelope_structure(self) -> EnvelopeStructure:
        header = self._top_header()
        if header is None:
            return EnvelopeStructure.empty()
        return _WireEnvelope(structure.envelope(header))

    def get_body_structure(self) -> BodyStructure:
        if self._raw is None:
            return BodyStructure.empty()
        return _WireBodyStructure(self._root())

    def contains(self, value: bytes) -> bool:
        """Case-insensitive search in decoded headers and text parts (SEARCH TEXT/BODY)."""
        if self._raw is None:
            return False
        needle = value.decode("utf-8", "replace").casefold()
        return any(needle in text.casefold() for text in self._texts())

    def _texts(self) -> Iterable[str]:
        stack = [self._root()]
        while stack:
            part = stack.pop()
            yield " ".join(decode_text(v) for f in part.header.fields for v in [_field(part, f)])
            if part.message is not None:
                stack.append(part.message)
            stack.extend(reversed(part.children))
            if part.maintype == b"text":
                charset = (part.param(b"charset") or b"utf-8").decode("ascii", "replace")
                yield _decode_charset(decode_transfer(part, _body(part)), charset)

    def _root(self) -> mime.Part:
        if self._tree is None:
            self._tree = mime.parse(self._raw or b"")
        return self._tree

    def _top_header(self) -> mime.Header | None:
        if self._raw is None:
            return None
        if self._tree is not None:
            return self._tree.header
        if self._header is None:
            self._header = mime.parse_header(self._raw)
        return self._header

    def _part(self, section: Sequence[int] | None) -> mime.Part | None:
        if self._raw is None:
            return None
        return mime.resolve(self._root(), section or [])

    def _message_part(self, section: Sequence[int] | None) -> mime.Part | None:
        """The message HEADER/TEXT refer to: the whole one, or a message/rfc822 part's."""
        if not section:
            return None if self._raw is None else self._root()
        part = self._part(section)
        return None if part is None else part.message


class _WireEnvelope(EnvelopeStructure):
    """An ENVELOPE already rendered by ``structure.envelope``."""

    def __init__(self, data: bytes) -> None:
        super().__init__(None, None, None, None, None, None, None, None, None, None)
        self._data = data

    def write(self, writer: WriteStream) -> None:
        writer.write(self._data)

    def __bytes__(self) -> bytes:
        return self._data


class _WireBodyStructure(BodyStructure):
    """BODY and BODYSTRUCTURE rendered by ``structure.body_structure``."""

    def __init__(self, part: mime.Part) -> None:
        super().__init__(
            part.maintype.decode("ascii", "replace"),
            part.subtype.decode("ascii", "replace"),
            None,
            None,
            None,
            None,
        )
        self._part = part

    def write(self, writer: WriteStream) -> None:
        writer.write(bytes(self))

    def __bytes__(self) -> bytes:
        return structure.body_structure(self._part, extended=False)

    @property
    def extended(self) -> List:
        # pymap writes a List; ours is one item whose bytes are the inside of the parentheses.
        full = structure.body_structure(self._part, extended=True)
        return List([Writeable.wrap(full[1:-1])])


def decode_text(value: bytes) -> str:
    """A header value as text: raw UTF-8 and RFC 2047 encoded-words decoded."""
    text = value.decode("utf-8", "replace")
    try:
        return str(make_header(decode_header(text)))
    except (HeaderParseError, UnicodeError, LookupError, ValueError):
        return text


def decode_transfer(part: mime.Part, body: bytes) -> bytes:
    """Undo a base64 or quoted-printable Content-Transfer-Encoding (RFC 2045 section 6)."""
    encoding = (part.header.first(b"content-transfer-encoding") or b"").strip().lower()
    try:
        if encoding == b"base64":
            return binascii.a2b_base64(body)
        if encoding == b"quoted-printable":
            return quopri.decodestring(body)
    except (binascii.Error, ValueError):
        return body
    return body


def _decode_charset(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset, "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def _field(part: mime.Part, f: mime.HeaderField) -> bytes:
    line = part.header.raw[f.start : f.end]
    return mime.unfold(line)


def _body(part: mime.Part) -> bytes:
    return part.header.raw[part.body_start : part.end]


def _wrap(data: bytes | None) -> Writeable:
    return Writeable.empty() if data is None else Writeable.wrap(data)
