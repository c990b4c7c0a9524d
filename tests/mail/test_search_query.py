"""The search language: words, phrases, field filters, negation, dates, limits, bad input."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from mailcue_server.errors import Invalid
from mailcue_server.mail.search_query import (
    MAX_PARTS,
    MAX_QUERY_CHARS,
    Flag,
    Scope,
    SearchQuery,
    Term,
    parse_search,
    words,
)


def terms(text: str) -> list[Term]:
    return list(parse_search(text).terms)


def test_words_are_separate_terms_and_quotes_make_a_phrase() -> None:
    assert terms("hello  World") == [Term(("hello",)), Term(("World",))]
    assert terms('"hello World"') == [Term(("hello", "World"))]
    assert terms('a "b c" d') == [Term(("a",)), Term(("b", "c")), Term(("d",))]


def test_punctuation_inside_a_word_makes_a_phrase() -> None:
    assert terms("alice@example.com") == [Term(("alice", "example", "com"))]
    assert terms("e-mail snake_case") == [Term(("e", "mail")), Term(("snake", "case"))]
    assert terms("https://example.com/x") == [Term(("https", "example", "com", "x"))]


def test_an_unbalanced_quote_runs_to_the_end() -> None:
    assert terms('report "weekly sync') == [Term(("report",)), Term(("weekly", "sync"))]
    assert terms('subject:"weekly sync') == [Term(("weekly", "sync"), Scope.SUBJECT)]


@pytest.mark.parametrize(
    ("text", "scope", "found"),
    [
        ("from:alice", Scope.FROM, ("alice",)),
        ("FROM:alice@example.com", Scope.FROM, ("alice", "example", "com")),
        ("to:bob", Scope.TO, ("bob",)),
        ('subject:"weekly sync"', Scope.SUBJECT, ("weekly", "sync")),
        ("body:invoice", Scope.BODY, ("invoice",)),
    ],
)
def test_text_fields(text: str, scope: Scope, found: tuple[str, ...]) -> None:
    assert terms(text) == [Term(found, scope)]


def test_unknown_fields_are_plain_text() -> None:
    assert terms("foo:bar") == [Term(("foo", "bar"))]
    assert terms("Re: lunch") == [Term(("Re",)), Term(("lunch",))]
    assert terms('x:"a b"') == [Term(("x", "a", "b"))]
    assert terms("10:30") == [Term(("10", "30"))]


def test_negation() -> None:
    assert terms("-spam") == [Term(("spam",), negated=True)]
    assert terms('-"out of office"') == [Term(("out", "of", "office"), negated=True)]
    assert terms("-from:bob") == [Term(("bob",), Scope.FROM, negated=True)]
    assert terms("well-known") == [Term(("well", "known"))]
    assert parse_search("-has:attachment").has_attachment is False
    assert parse_search("-is:read").without_flags == {Flag.SEEN}
    assert parse_search("-is:unread").with_flags == {Flag.SEEN}


def test_prefixes() -> None:
    assert terms("inv*") == [Term(("inv",), prefix=True)]
    assert terms("from:ali*") == [Term(("ali",), Scope.FROM, prefix=True)]
    assert terms('"inv*"') == [Term(("inv",))]  # quoted: the star is punctuation
    assert terms("a*") == [Term(("a",))]  # one letter: too short to expand


@pytest.mark.parametrize(
    ("text", "with_flags", "without_flags"),
    [
        ("is:read", {Flag.SEEN}, set()),
        ("is:unread", set(), {Flag.SEEN}),
        ("is:flagged", {Flag.FLAGGED}, set()),
        ("is:starred", {Flag.FLAGGED}, set()),
        ("is:answered", {Flag.ANSWERED}, set()),
        ("IS:Draft", {Flag.DRAFT}, set()),
        ("is:unread -is:flagged", set(), {Flag.SEEN, Flag.FLAGGED}),
    ],
)
def test_flags(text: str, with_flags: set[Flag], without_flags: set[Flag]) -> None:
    query = parse_search(text)
    assert (query.with_flags, query.without_flags) == (with_flags, without_flags)


def test_attachments() -> None:
    assert parse_search("has:attachment").has_attachment is True
    assert parse_search("has:attachments").has_attachment is True
    assert parse_search("has:attachment -has:attachment").matches_nothing


@pytest.mark.parametrize(
    ("text", "after", "before"),
    [
        ("after:2026-05-01", datetime(2026, 5, 1, tzinfo=UTC), None),
        ("after:2026/5/1", datetime(2026, 5, 1, tzinfo=UTC), None),
        ("before:2026-06-01", None, datetime(2026, 6, 1, tzinfo=UTC)),
        ("before:2026-06-01T14:30:00Z", None, datetime(2026, 6, 1, 14, 30, tzinfo=UTC)),
        ("before:2026-06-01T14:30+02:00", None, datetime(2026, 6, 1, 12, 30, tzinfo=UTC)),
        ("after:2026-06-01T14:30", datetime(2026, 6, 1, 14, 30, tzinfo=UTC), None),
        ("-before:2026-05-01", datetime(2026, 5, 1, tzinfo=UTC), None),
        ("-after:2026-05-01", None, datetime(2026, 5, 1, tzinfo=UTC)),
        ("after:2026-01-01 after:2026-03-01", datetime(2026, 3, 1, tzinfo=UTC), None),
        ("before:2026-03-01 before:2026-01-01", None, datetime(2026, 1, 1, tzinfo=UTC)),
    ],
)
def test_dates(text: str, after: datetime | None, before: datetime | None) -> None:
    query = parse_search(text)
    assert (query.after, query.before) == (after, before)


def test_combined() -> None:
    query = parse_search(
        'from:bob "quarterly report" -lunch has:attachment is:unread after:2026-01-01'
    )
    assert query == SearchQuery(
        terms=(
            Term(("bob",), Scope.FROM),
            Term(("quarterly", "report")),
            Term(("lunch",), negated=True),
        ),
        without_flags=frozenset({Flag.SEEN}),
        has_attachment=True,
        after=datetime(2026, 1, 1, tzinfo=UTC),
    )
    assert not query.is_empty and not query.matches_nothing


@pytest.mark.parametrize("text", ["", "   ", "\t\n"])
def test_a_blank_search_is_no_search(text: str) -> None:
    query = parse_search(text)
    assert query.is_empty and not query.matches_nothing


@pytest.mark.parametrize("text", ["\\", "!!! ...", "-", '"', '""', "- -", "*", "-!", '"..."'])
def test_a_search_with_nothing_to_look_for_is_invalid(text: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_search(text)
    assert "has nothing to look for" in caught.value.message
    assert repr(text.strip()) in caught.value.message


def test_contradictions_match_nothing() -> None:
    assert parse_search("is:read is:unread").matches_nothing
    assert parse_search("after:2026-03-01 before:2026-03-01").matches_nothing
    assert not parse_search("after:2026-03-01 before:2026-03-02").matches_nothing


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("before:notadate", "'before:' needs a date such as 2026-05-31"),
        ("after:2026-02-30", "not '2026-02-30'"),
        ("after:", "'after:' needs a date"),
        ("is:banana", "Unknown 'is:banana': use one of is:read, is:unread"),
        ("has:pdf", "Unknown 'has:pdf': use has:attachment"),
        ("from:", "'from:' needs a word to look for"),
        ('subject:""', "'subject:' needs a word to look for"),
        ("to:@", "'to:' needs a word"),
        ("x" * (MAX_QUERY_CHARS + 1), f"at most {MAX_QUERY_CHARS} characters"),
        (" ".join(["w"] * (MAX_PARTS + 1)), f"at most {MAX_PARTS}"),
        ("y" * 256, "A search word is too long"),
    ],
)
def test_bad_input_is_invalid_with_a_clear_message(text: str, message: str) -> None:
    with pytest.raises(Invalid) as caught:
        parse_search(text)
    assert message in caught.value.message


def test_words_split_like_the_index() -> None:
    assert words("Grüße_aus Köln, 2026!") == ("Grüße", "aus", "Köln", "2026")
    assert words("東京 café") == ("東京", "café")
