"""The view of a message pymap's SEARCH criteria evaluate (RFC 3501 section 6.4.4),
the criteria where we differ from pymap (:func:`criteria`), and how deep a
SEARCH command may nest its criteria (:class:`Nesting`).

pymap's envelope criteria (FROM, TO, CC, BCC, SUBJECT, SENT*) only call
``str()`` on header objects and read ``.datetime`` from the date. Building
real ``email.headerregistry`` headers cost about 0.3 ms a field, several
seconds for a SUBJECT search over 5,000 messages, so the fields a search
names are decoded into the light :class:`_Text` and :class:`_Date`
stand-ins instead, and the others are left empty. Address fields are
parsed as ENVELOPE parses them and compared as ``name <mailbox@host>``, so
comments and folding inside an address do not hide it (as Dovecot does).

pymap runs BODY and TEXT alike (``contains``); RFC 3501 gives BODY the body
only, so :func:`criteria` builds BODY from :meth:`LoadedMessage.body_contains`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from email.headerregistry import DateHeader, UnstructuredHeader
from email.utils import parsedate_to_datetime
from typing import Any, cast

from pymap.interfaces.message import LoadedMessageInterface, MessageInterface
from pymap.parsing.response.fetch import EnvelopeStructure
from pymap.parsing.specials import FetchRequirement, SearchKey
from pymap.search import SearchCriteria, SearchCriteriaSet, SearchParams

from mailcue_server.workers.imap.message import LoadedMessage, Message, decode_text
from mailcue_server.workers.imap.structure import address_list, is_group_marker

_ADDRESS_FIELDS = frozenset({b"from", b"to", b"cc", b"bcc"})


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
            if name in _ADDRESS_FIELDS:
                return [_Text(text) for value in header.values(name) for text in addresses(value)]
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


def addresses(value: bytes) -> list[str]:
    """An address field as the texts FROM/TO/CC/BCC compare: ``name <mailbox@host>``, ``group:``.

    Comments, folding and source routes are gone; display names are decoded.
    """
    texts: list[str] = []
    for name, _, mailbox, host in address_list(value):
        if is_group_marker((name, None, mailbox, host)):
            if mailbox is not None:
                texts.append(decode_text(mailbox) + ":")
            continue
        spec = (mailbox or b"") + (b"@" + host if host else b"")
        text = "<" + spec.decode("utf-8", "replace") + ">"
        texts.append(f"{decode_text(name)} {text}" if name else text)
    return texts


def criteria(keys: Iterable[SearchKey], params: SearchParams) -> SearchCriteriaSet:
    """pymap's criteria for ``keys``, with BODY searching the body only (RFC 3501 6.4.4)."""
    return _AllOf(keys, params)


def _criterion(key: SearchKey, params: SearchParams) -> SearchCriteria:
    name = key.value
    if name in params.disabled:
        return SearchCriteria.of(key, params)  # pymap refuses it
    if key.inverse:
        return _Not(_criterion(key.not_inverse, params), params)
    if name == b"BODY":
        return _BodyOnly(key.filter_str, params)
    if name == b"OR":
        left, right = key.filter_key_or
        return _Or(_criterion(left, params), _criterion(right, params), params)
    if name == b"KEYSET":
        return _AllOf(key.filter_key_set, params)
    return SearchCriteria.of(key, params)


class _AllOf(SearchCriteriaSet):
    """pymap's set of criteria (its ``sequence_set`` too), built by :func:`_criterion`."""

    def __init__(self, keys: Iterable[SearchKey], params: SearchParams) -> None:
        SearchCriteria.__init__(self, params)
        self.all_criteria = [_criterion(key, params) for key in keys]


class _Not(SearchCriteria):
    def __init__(self, inner: SearchCriteria, params: SearchParams) -> None:
        super().__init__(params)
        self.inner = inner

    def matches(
        self, msg_seq: int, msg: MessageInterface, loaded_msg: LoadedMessageInterface
    ) -> bool:
        return not self.inner.matches(msg_seq, msg, loaded_msg)


class _Or(SearchCriteria):
    def __init__(self, left: SearchCriteria, right: SearchCriteria, params: SearchParams) -> None:
        super().__init__(params)
        self.left = left
        self.right = right

    def matches(
        self, msg_seq: int, msg: MessageInterface, loaded_msg: LoadedMessageInterface
    ) -> bool:
        return self.left.matches(msg_seq, msg, loaded_msg) or self.right.matches(
            msg_seq, msg, loaded_msg
        )


class _BodyOnly(SearchCriteria):
    """SEARCH BODY: the string in the body of the message, not in its header."""

    def __init__(self, value: str, params: SearchParams) -> None:
        super().__init__(params)
        self.value = value.encode("utf-8", "replace")

    def matches(
        self, msg_seq: int, msg: MessageInterface, loaded_msg: LoadedMessageInterface
    ) -> bool:
        if isinstance(loaded_msg, LoadedMessage):
            return loaded_msg.body_contains(self.value)
        return loaded_msg.contains(self.value)


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
