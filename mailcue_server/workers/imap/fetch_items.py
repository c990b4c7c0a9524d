"""FETCH and UID FETCH whose ``HEADER.FIELDS`` lists come back exactly as asked.

pymap keeps a header list as an upper-cased set, so ``BODY[HEADER.FIELDS
(from from)]`` was answered as ``BODY[HEADER.FIELDS (FROM)]``. RFC 3501
section 7.4.2 echoes the section as the client wrote it, and clients (and
imaptest) match the response item against their request. These classes keep
the list's text from the command line and write it back; the set still
chooses the fields.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pymap.parsing import EndLine, Params, Space
from pymap.parsing.command.select import FetchCommand
from pymap.parsing.exceptions import NotParseable
from pymap.parsing.primitives import List
from pymap.parsing.specials import ExtensionOptions, FetchAttribute, SequenceSet
from pymap.parsing.specials.fetchattr import FetchPartial


class _Section(FetchAttribute.Section):
    """A section that remembers its header list's text, e.g. ``(from from)``."""

    def __init__(
        self,
        parts: Sequence[int],
        specifier: bytes | None = None,
        headers: frozenset[bytes] | None = None,
        *,
        as_written: bytes | None = None,
    ) -> None:
        super().__init__(parts, specifier, headers)
        self.as_written = as_written


class AsAskedFetchAttribute(FetchAttribute):
    """A FETCH item written back with its header list as the client sent it."""

    @classmethod
    def _parse_section(
        cls, buf: memoryview, params: Params
    ) -> tuple[FetchAttribute.Section, memoryview]:
        section, rest = super()._parse_section(buf, params)
        if not section.headers:
            return section, rest
        consumed = bytes(buf[: len(buf) - len(rest)])
        as_written = consumed[consumed.index(b"(") :].strip()
        return _Section(
            section.parts, section.specifier, section.headers, as_written=as_written
        ), rest

    @property
    def for_response(self) -> FetchAttribute:
        partial = self.partial
        if partial is None or partial.length is None:
            return self
        # The response names only the start of a partial (RFC 3501 section 7.4.2).
        return AsAskedFetchAttribute(self.value, self.section, FetchPartial(partial.start, None))

    @property
    def raw(self) -> bytes:
        section = self.section
        if not isinstance(section, _Section) or section.as_written is None:
            return super().raw
        name = b"BODY" if self.value == b"BODY.PEEK" else self.value
        inside = b".".join(b"%d" % part for part in section.parts)
        specifier = section.specifier or b""
        inside += (b"." if inside else b"") + specifier + b" " + section.as_written
        partial = self.partial
        suffix = b""
        if partial is not None:
            suffix = (
                b"<%d>" % partial.start
                if partial.length is None
                else b"<%d.%d>" % (partial.start, partial.length)
            )
        return b"%b[%b]%b" % (name, inside, suffix)


class AsAskedFetchCommand(FetchCommand):
    """FETCH (RFC 3501 section 6.4.5) parsed with :class:`AsAskedFetchAttribute`."""

    @classmethod
    def parse(cls, buf: memoryview, params: Params) -> tuple[FetchCommand, memoryview]:
        _, buf = Space.parse(buf, params)
        seq_set, buf = SequenceSet.parse(buf, params)
        _, buf = Space.parse(buf, params)
        attributes: Sequence[FetchAttribute]
        try:
            attributes, buf = cls._check_macros(buf, params)
        except NotParseable:  # not ALL, FAST or FULL
            try:
                attribute, buf = AsAskedFetchAttribute.parse(buf, params)
                attributes = [attribute]
            except NotParseable:  # a parenthesised list
                listed, buf = List.parse(buf, params.copy(expected=[AsAskedFetchAttribute]))
                attributes = listed.get_as(FetchAttribute)
        if params.uid:
            attributes = [*attributes, FetchAttribute(b"UID")]
        options, buf = ExtensionOptions.parse(buf, params)
        _, buf = EndLine.parse(buf, params)
        return cls(params.tag, seq_set, attributes, options), buf


class AsAskedUidFetchCommand(AsAskedFetchCommand):
    """UID FETCH (RFC 3501 section 6.4.8)."""

    command = b"UID FETCH"
    delegate = FetchCommand
    uid: ClassVar[bool] = True

    @classmethod
    def parse(cls, buf: memoryview, params: Params) -> tuple[FetchCommand, memoryview]:
        return super().parse(buf, params.copy(uid=True))
