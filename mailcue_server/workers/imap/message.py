"""Messages as pymap sees them: metadata from the store, content loaded in batches.

:class:`Message` is what a session caches per UID (flags, internal date,
size). Its content is loaded only when a command needs the bytes, through a
:class:`ContentLoader` that fetches the next messages of the same command in
one query, so ``FETCH 1:500 ENVELOPE`` is a handful of queries, not 500.

:class:`LoadedMessage` answers every FETCH item from the exact stored bytes
(:mod:`mailcue_server.mail.tree` finds the parts, ``structure.py`` writes
ENVELOPE and BODYSTRUCTURE). A large message is parsed in a thread while
the content loads (:data:`THREAD_PARSE_BYTES`), so FETCH never holds the
event loop for long. pymap's own versions rewrite the Date, decode 8-bit subjects,
send ``""`` for missing names and count MIME headers into part sizes; these
replace them.
"""

from __future__ import annotations

import asyncio
import functools
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

from mailcue_server.mail import tree
from mailcue_server.store import changes
from mailcue_server.store.changes import MessageMeta
from mailcue_server.store.mail_models import SystemFlag
from mailcue_server.workers.imap import structure

BATCH_MESSAGES = 200
BATCH_BYTES = 8 * 1024 * 1024
"""Most messages, and bytes, one content query loads."""

THREAD_PARSE_BYTES = 256 * 1024
"""Messages larger than this are parsed in a thread when a command needs their structure."""

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
        raw = await self.content(requirement)
        root = None
        if (
            raw is not None
            and len(raw) > THREAD_PARSE_BYTES
            and requirement.has_all(FetchRequirement.BODY)
        ):
            root = await asyncio.to_thread(tree.parse, raw)  # off the loop: see the docstring
        return LoadedMessage(self, requirement, raw, root)

    async def content(self, requirement: FetchRequirement) -> bytes | None:
        """The raw bytes if ``requirement`` needs them and the loader fetches any."""
        if not self._loader.wanted or requirement.has_none(FetchRequirement.CONTENT):
            return None
        return await self._loader.raw(self.uid)


class LoadedMessage(LoadedMessageInterface):
    """FETCH's view of one message's exact bytes (RFC 3501 section 6.4.5)."""

    __slots__ = ("_header", "_message", "_raw", "_requirement", "_tree")

    def __init__(
        self,
        message: Message,
        requirement: FetchRequirement,
        raw: bytes | None,
        root: tree.Part | None = None,
    ) -> None:
        self._message = message
        self._requirement = requirement
        self._raw = raw
        self._tree = root
        self._header: tree.Header | None = None

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
        return _wrap(None if part is None else part.head())

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
            return _wrap(target.head())
        names = frozenset(name.upper() for name in subset)
        return _wrap(target.header.lines(names, inverse=inverse) + b"\r\n")

    def get_message_text(self, section: Sequence[int] | None = None) -> Writeable:
        target = self._message_part(section)
        return _wrap(None if target is None else target.body())

    def get_body(self, section: Sequence[int] | None = None, binary: bool = False) -> Writeable:
        if not section:
            if binary and self._raw is not None:
                root = self._root()
                return _wrap(root.head() + root.decoded_body())
            return _wrap(self._raw)
        part = self._part(section)
        if part is None:
            return Writeable.empty()
        return _wrap(part.decoded_body() if binary else part.body())

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
        """SEARCH TEXT (RFC 3501 section 6.4.4): the header or the body, case-insensitive."""
        return self._search(value, headers=True)

    def body_contains(self, value: bytes) -> bool:
        """SEARCH BODY: the body only; the message's own header fields are not searched."""
        return self._search(value, headers=False)

    def _search(self, value: bytes, *, headers: bool) -> bool:
        if self._raw is None:
            return False
        needle = value.decode("utf-8", "replace").casefold()
        return any(needle in text.casefold() for text in self._texts(headers=headers))

    def _texts(self, *, headers: bool) -> Iterable[str]:
        """Decoded header text and text parts, depth first.

        Without ``headers`` the top-level header and the MIME headers of the
        parts are left out; the header of an attached message is part of the
        body a reader sees, so it stays.
        """
        root = self._root()
        stack = [(root, headers)]
        while stack:
            part, with_header = stack.pop()
            if with_header:
                yield " ".join(decode_text(part.header.value(f)) for f in part.header.fields)
            if part.message is not None:
                stack.append((part.message, True))
            stack.extend((child, headers) for child in reversed(part.children))
            if part.maintype == b"text":
                charset = (part.param(b"charset") or b"utf-8").decode("ascii", "replace")
                yield _decode_charset(part.decoded_body(), charset)

    def _root(self) -> tree.Part:
        if self._tree is None:
            self._tree = tree.parse(self._raw or b"")
        return self._tree

    def _top_header(self) -> tree.Header | None:
        if self._raw is None:
            return None
        if self._tree is not None:
            return self._tree.header
        if self._header is None:
            self._header = tree.parse_header(self._raw)
        return self._header

    def _part(self, section: Sequence[int] | None) -> tree.Part | None:
        if self._raw is None:
            return None
        return tree.find(self._root(), section or [])

    def _message_part(self, section: Sequence[int] | None) -> tree.Part | None:
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

    def __init__(self, part: tree.Part) -> None:
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


def _decode_charset(body: bytes, charset: str) -> str:
    try:
        return body.decode(charset, "replace")
    except LookupError:
        return body.decode("utf-8", "replace")


def _wrap(data: bytes | None) -> Writeable:
    return Writeable.empty() if data is None else Writeable.wrap(data)
