"""Lines over RFC 5322's 998 octets: which ones, and the warnings the detail shows."""

from __future__ import annotations

from mailcue_server.mail.line_checks import MAX_REPORTED, line_warnings, long_lines


def test_the_limit_is_998_octets_without_the_line_end() -> None:
    raw = b"a: b\r\n\r\n" + b"x" * 998 + b"\r\n" + b"y" * 999 + b"\r\n" + b"z" * 999
    assert long_lines(raw) == [(4, 999), (5, 999)]  # the last line has no line end at all
    assert line_warnings(raw) == [
        "line 4 is 999 octets; RFC 5322 allows 998",
        "line 5 is 999 octets; RFC 5322 allows 998",
    ]


def test_bare_lf_and_stray_cr() -> None:
    # A bare LF ends a line too (appended mail); a CR that ends no line counts as an octet.
    raw = b"s: t\n\n" + b"x" * 998 + b"\r\n" + b"x" * 998 + b"\r\r\n" + b"w" * 5000 + b"\n"
    assert long_lines(raw) == [(4, 998 + 1), (5, 5000)]


def test_big_numbers_get_separators_and_many_lines_are_summed_up() -> None:
    raw = (b"q" * 12345 + b"\r\n") * (MAX_REPORTED + 5)
    warnings = line_warnings(raw)
    assert warnings[0] == "line 1 is 12,345 octets; RFC 5322 allows 998"
    assert warnings[MAX_REPORTED - 1].startswith(f"line {MAX_REPORTED} is 12,345")
    assert warnings[-1] == "5 more lines are over 998 octets"
    assert len(warnings) == MAX_REPORTED + 1


def test_a_message_within_the_limits_has_no_warnings() -> None:
    assert line_warnings(b"Subject: fine\r\n\r\n" + (b"k" * 998 + b"\r\n") * 3) == []
    assert line_warnings(b"") == []
