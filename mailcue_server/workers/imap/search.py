"""The view of a message pymap's SEARCH criteria evaluate (RFC 3501 section 6.4.4).

pymap's envelope criteria (FROM, TO, CC, BCC, SUBJECT, SENT*) only call
``str()`` on header objects and read ``.datetime`` from the date. Building
real ``email.headerregistry`` headers cost about 0.3 ms a field, several
seconds for a SUBJECT search over 5,000 messages, so the fields a search
names are decoded into the light :class:`_Text` and :class:`_Date`
stand-ins instead, and the others are left empty.
"""

from __future__ import annotations

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
