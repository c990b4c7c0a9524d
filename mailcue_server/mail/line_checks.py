"""Lines longer than RFC 5322 allows, reported as readable warnings.

RFC 5322 section 2.1.1 says each line MUST be no more than 998 characters,
CRLF excluded (RFC 5321 section 4.5.3.1.6 says the same of SMTP's 1,000 with
the CRLF). Our SMTP server accepts longer lines and stores them unchanged, so
a tester can see what their application sent; the email detail names each
offending line. Computed when the detail is read, never on the receiving path.
"""

from __future__ import annotations

import re

MAX_LINE = 998
"""Longest line RFC 5322 section 2.1.1 allows, in octets without its CRLF."""

MAX_REPORTED = 20
"""Lines named one by one; the rest are counted in one last warning."""

# One more octet than allowed, then the rest of the line (a CR before the LF
# is matched too and discounted below).
_LONG_LINE = re.compile(rb"[^\n]{%d,}" % (MAX_LINE + 1))


def long_lines(raw: bytes) -> list[tuple[int, int]]:
    """Every line over :data:`MAX_LINE` octets.

    Lines end at LF (CRLF in mail as SMTP delivers it; a bare LF in appended
    mail); a CR right before the LF is not counted.

    Returns:
        ``(line number, octets)`` pairs, lines numbered from 1 in ``raw``.
    """
    found: list[tuple[int, int]] = []
    line, counted_to = 1, 0
    for match in _LONG_LINE.finditer(raw):
        octets = match.end() - match.start()
        if raw.endswith(b"\r", 0, match.end()) and raw.startswith(b"\n", match.end()):
            octets -= 1
        if octets <= MAX_LINE:
            continue
        line += raw.count(b"\n", counted_to, match.start())
        counted_to = match.start()
        found.append((line, octets))
    return found


def line_warnings(raw: bytes) -> list[str]:
    """Warnings such as ``line 12 is 5,000 octets; RFC 5322 allows 998``.

    Line numbers count from the first line of the stored message, the
    headers our server added on top included (the ``.eml`` download).
    """
    found = long_lines(raw)
    warnings = [
        f"line {line:,} is {octets:,} octets; RFC 5322 allows {MAX_LINE}"
        for line, octets in found[:MAX_REPORTED]
    ]
    rest = len(found) - MAX_REPORTED
    if rest > 0:
        warnings.append(f"{rest:,} more lines are over {MAX_LINE} octets")
    return warnings
