"""The message search language: a ``search`` string in, a :class:`SearchQuery` out.

Pure: no database here. ``store/search.py`` turns a :class:`SearchQuery` into
each engine's full-text query. The language follows the search box users
know from webmail:

- ``invoice 2026`` finds messages with both words, in the subject, the
  sender, the recipients or the body text. Words match whole words, case
  aside; ``inv*`` matches words that start with ``inv``.
- ``"quarterly report"`` finds the words next to each other, in that order.
  A term with punctuation inside is such a phrase too: ``alice@example.com``
  is ``alice example com``. A quote left open runs to the end.
- ``from:``, ``to:`` (To or Cc), ``subject:`` and ``body:`` limit a word or
  a quoted phrase to those fields: ``from:alice``, ``subject:"weekly sync"``.
- ``has:attachment``; ``is:read``, ``is:unread``, ``is:flagged`` (or
  ``is:starred``), ``is:answered``, ``is:draft``.
- ``after:2026-05-01`` (from that day on, UTC) and ``before:2026-06-01``
  (up to that day, not included); a time may follow, ISO 8601 style
  (``after:2026-05-01T14:00:00+02:00``).
- ``-`` in front of any of these excludes what it would find: ``-from:bob``,
  ``-"out of office"``, ``-is:read``.

Every part must hold (AND); there is no OR. An unknown ``name:value`` is
plain text, so ``re:`` or a URL is searched as written. A search with nothing
to look for (only punctuation, such as ``\\`` or ``"!!"``) is refused rather
than run as "every message"; an empty or blank one is no search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum

from mailcue_server.errors import Invalid

MAX_QUERY_CHARS = 1000
MAX_PARTS = 32
MAX_WORD_CHARS = 255


class Scope(StrEnum):
    """The fields a text term must match in."""

    ANY = "any"
    FROM = "from"
    TO = "to"
    SUBJECT = "subject"
    BODY = "body"


class Flag(StrEnum):
    """The IMAP system flags ``is:`` tests (RFC 9051 section 2.3.2)."""

    SEEN = "seen"
    ANSWERED = "answered"
    FLAGGED = "flagged"
    DRAFT = "draft"


@dataclass(frozen=True, slots=True)
class Term:
    """Words that must appear next to each other, in this order.

    Attributes:
        words: Runs of letters and digits, as typed (the engines fold case).
        scope: Where they must appear.
        negated: The message must *not* contain them.
        prefix: The last word is a prefix (``inv*``).
    """

    words: tuple[str, ...]
    scope: Scope = Scope.ANY
    negated: bool = False
    prefix: bool = False


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed search: every part must hold.

    Attributes:
        terms: Text terms, in the order written.
        with_flags: Flags a message must have.
        without_flags: Flags a message must not have.
        has_attachment: Whether it must (or must not) have an attachment; ``None``: either.
        after: Received at or after this instant (UTC).
        before: Received before this instant (UTC).
        contradictory: Two parts exclude each other (``has:attachment -has:attachment``).
    """

    terms: tuple[Term, ...] = ()
    with_flags: frozenset[Flag] = field(default_factory=frozenset)
    without_flags: frozenset[Flag] = field(default_factory=frozenset)
    has_attachment: bool | None = None
    after: datetime | None = None
    before: datetime | None = None
    contradictory: bool = False

    @property
    def is_empty(self) -> bool:
        """Nothing to test: the search finds every message."""
        return self == SearchQuery()

    @property
    def matches_nothing(self) -> bool:
        """No message can satisfy every part, whatever the store holds."""
        return (
            self.contradictory
            or bool(self.with_flags & self.without_flags)
            or (self.after is not None and self.before is not None and self.after >= self.before)
        )


# One part: an optional "-", an optional "name:", then a quoted phrase (open to the end
# when unbalanced) or a run of non-space characters.
_PART = re.compile(
    r'(?P<neg>-)?(?:(?P<name>[A-Za-z]+):)?(?:"(?P<quoted>[^"]*)"?|(?P<bare>[^\s"]*))'
)
# Runs of letters and digits: what SQLite's unicode61 tokenizer and the PostgreSQL
# index (migrations/0003_search_index.py) treat as words. "_" separates, as there.
_WORD = re.compile(r"[^\W_]+")
_DAY = re.compile(r"(\d{4})[-/](\d{1,2})[-/](\d{1,2})")

_SCOPES = {scope.value: scope for scope in Scope if scope is not Scope.ANY}
_IS = {
    "read": (Flag.SEEN, True),
    "unread": (Flag.SEEN, False),
    "flagged": (Flag.FLAGGED, True),
    "starred": (Flag.FLAGGED, True),
    "answered": (Flag.ANSWERED, True),
    "draft": (Flag.DRAFT, True),
}
_HAS = {"attachment", "attachments"}


def words(text: str) -> tuple[str, ...]:
    """The words of ``text`` as the full-text index sees them."""
    return tuple(_WORD.findall(text))


def parse_search(text: str) -> SearchQuery:
    """Parse a ``search`` string.

    Args:
        text: What the user typed.

    Returns:
        The query; empty (:attr:`SearchQuery.is_empty`, every message) only when
        ``text`` is empty or blank.

    Raises:
        Invalid: Too long, too many parts, a word too long, a bad date, an
            unknown ``is:``/``has:`` value, or nothing to look for (``\\``,
            ``"!!"``): such a search must not find every message.
    """
    if len(text) > MAX_QUERY_CHARS:
        raise Invalid(f"Search is too long: at most {MAX_QUERY_CHARS} characters")
    query = SearchQuery()
    parts = 0
    position = 0
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        match = _PART.match(text, position)
        if match is None or match.end() == position:
            position += 1  # a lone '"' or similar: nothing to search for
            continue
        position = match.end()
        parts += 1
        if parts > MAX_PARTS:
            raise Invalid(f"Search has too many parts: at most {MAX_PARTS}")
        query = _add(query, match)
    if query.is_empty and text.strip():
        shown = text.strip() if len(text.strip()) <= 40 else text.strip()[:40] + "..."
        raise Invalid(
            f"Search {shown!r} has nothing to look for: give a word or "
            '"a phrase" (letters or digits), or from:, to:, subject:, body:, '
            "has:attachment, is:unread, before:, after:"
        )
    return query


def _add(query: SearchQuery, match: re.Match[str]) -> SearchQuery:
    negated = match.group("neg") is not None
    name = (match.group("name") or "").lower()
    quoted = match.group("quoted")
    value = quoted if quoted is not None else match.group("bare")
    if name in _SCOPES:
        return _add_term(query, value, _SCOPES[name], negated, quoted is None, name)
    if name in ("is", "has"):
        return _add_state(query, name, value.strip().lower(), negated)
    if name in ("after", "before"):
        bound = _instant(name, value)
        is_after = (name == "after") != negated  # -after:X means before:X, and back
        if is_after:
            return replace(query, after=max(bound, query.after or bound))
        return replace(query, before=min(bound, query.before or bound))
    text = f"{match.group('name')}:{value}" if name else value
    return _add_term(query, text, Scope.ANY, negated, quoted is None, None)


def _add_term(
    query: SearchQuery, text: str, scope: Scope, negated: bool, bare: bool, name: str | None
) -> SearchQuery:
    found = words(text)
    if not found:
        if name is not None:
            raise Invalid(f"'{name}:' needs a word to look for, e.g. {name}:alice")
        return query  # only punctuation: nothing to look for
    if any(len(word) > MAX_WORD_CHARS for word in found):
        raise Invalid(f"A search word is too long: at most {MAX_WORD_CHARS} characters")
    prefix = bare and text.endswith("*") and len(found[-1]) >= 2
    term = Term(words=found, scope=scope, negated=negated, prefix=prefix)
    return replace(query, terms=(*query.terms, term))


def _add_state(query: SearchQuery, name: str, value: str, negated: bool) -> SearchQuery:
    if name == "has":
        if value not in _HAS:
            raise Invalid(f"Unknown 'has:{value}': use has:attachment")
        wanted = not negated
        if query.has_attachment is not None and query.has_attachment != wanted:
            return replace(query, contradictory=True)
        return replace(query, has_attachment=wanted)
    if value not in _IS:
        choices = ", ".join(f"is:{choice}" for choice in _IS)
        raise Invalid(f"Unknown 'is:{value}': use one of {choices}")
    flag, present = _IS[value]
    if present != negated:
        return replace(query, with_flags=query.with_flags | {flag})
    return replace(query, without_flags=query.without_flags | {flag})


def _instant(name: str, value: str) -> datetime:
    """A day (its first instant, UTC) or an ISO 8601 date and time."""
    text = value.strip()
    try:
        day = _DAY.fullmatch(text)
        if day is not None:
            year, month, date = (int(part) for part in day.groups())
            return datetime(year, month, date, tzinfo=UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(
            f"'{name}:' needs a date such as 2026-05-31 or 2026-05-31T14:00:00Z, not {value!r}"
        ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
