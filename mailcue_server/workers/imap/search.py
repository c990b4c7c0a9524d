"""The view of a message pymap's SEARCH criteria evaluate (RFC 3501 section 6.4.4),
and how deep a SEARCH command may nest its criteria (:class:`Nesting`).

pymap's envelope criteria (FROM, TO, CC, BCC, SUBJECT, SENT*) only call
``str()`` on header objects and read ``.datetime`` from the date. Building
real ``email.headerregistry`` headers cost about 0.3 ms a field, several
seconds for a SUBJECT search over 5,000 messages, so the fields a search
names are decoded into the light :class:`_Text` and :class:`_Date`
stand-ins instead, and the others are left empty.
"""

from __future__ import annotations

import re
from datetime import datetime
from email.headerregistry import DateHeader, UnstructuredHeader
from email.utils import parsedate_to_datetime
from typing import Any, cast

from pymap.parsing.response.fetch import EnvelopeStructure
from pymap.parsing.specials import FetchRequirement

from mailcue_server.workers.imap.message import LoadedMessage, Message, decode_text


class SearchView(LoadedMessage):
    """A loaded message whose envelope holds the decoded ``fields`` a search compares."""

    __slots__ = ("_fields",)

    def __init__(
        self,
        message: Message,
        requirement: FetchRequirement,
        raw: bytes | None,
        fields: frozenset[bytes],
    ) -> None:
        super().__init__(message, requirement, raw)
        self._fields = fields

    def get_envelope_structure(self) -> EnvelopeStructure:
        header = self._top_header()
        if header is None:
            return EnvelopeStructure.empty()

        def texts(name: bytes) -> list[Any] | None:
            if name not in self._fields:
                return None
            return [_Text(decode_text(value)) for value in header.values(name)]

        date: Any = None
        if b"date" in self._fields and (value := header.first(b"date")) is not None:
            date = _Date(value)
        subjects = texts(b"subject") or [None]
        return EnvelopeStructure(
            cast(DateHeader | None, date),
            cast(UnstructuredHeader | None, subjects[0]),
            texts(b"from"),
            None,
            None,
            texts(b"to"),
            texts(b"cc"),
            texts(b"bcc"),
            None,
            None,
        )


class _Text(str):
    """A decoded header value standing in for an ``email.headerregistry`` header."""

    __slots__ = ()


class _Date:
    """A Date field standing in for ``DateHeader``: only ``datetime`` is read."""

    __slots__ = ("datetime",)

    def __init__(self, value: bytes) -> None:
        try:
            parsed: datetime | None = parsedate_to_datetime(value.decode("ascii", "replace"))
        except (ValueError, TypeError, IndexError):
            parsed = None
        self.datetime = parsed


MAX_NESTING = 100
"""Deepest SEARCH criteria taken: parentheses, ``OR`` and ``NOT`` together.

pymap parses and evaluates nested keys recursively, and about 320 levels
reach Python's recursion limit (measured here). Clients nest a few levels
(an ``OR`` per alternative of a quick filter); 100 leaves room for them.
"""

_QUOTED = re.compile(rb'"(?:[^"\\]|\\.)*"')
_OPERATOR = re.compile(rb"(?:(?<=[ (])|^)(?:OR|NOT)(?= )", re.IGNORECASE)
_PARENTHESIS = re.compile(rb"[()]")


class Nesting:
    """How deep a SEARCH command's criteria may nest, at most, read line by line.

    The bound is the deepest parenthesis plus every ``OR`` and ``NOT``, each
    of which opens a level (RFC 9051 section 6.4.4): cheap, linear, and read
    before pymap's recursive parser sees the command. Quoted strings are
    skipped; literals never reach :meth:`read`.
    """

    __slots__ = ("_depth", "_operators", "_parentheses")

    def __init__(self) -> None:
        self._depth = 0
        self._parentheses = 0
        self._operators = 0

    def read(self, line: bytes) -> None:
        """Count one line of the command (its first, or one after a literal)."""
        text = _QUOTED.sub(b'""', line)
        self._operators += len(_OPERATOR.findall(text))
        for parenthesis in _PARENTHESIS.findall(text):
            self._depth += 1 if parenthesis == b"(" else -1
            self._parentheses = max(self._parentheses, self._depth)

    @property
    def too_deep(self) -> bool:
        return self._parentheses + self._operators > MAX_NESTING
