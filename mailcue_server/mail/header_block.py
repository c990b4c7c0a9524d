"""Reading a header block cheaply: where it ends, and its fields in order.

On the SMTP hot path every stored message has its header block read
(STACK-NOTES, "Parsing mail on the hot path"). :func:`header_items` reads
fields the way the stdlib's ``compat32`` feed parser does, without its
per-line machinery. MIME parts are read by :mod:`.tree`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

Fields = dict[str, list[str]]
"""Header values by lowercased name: unfolded, raw UTF-8 decoded, RFC 2047 words left as is."""

# A line break that folds a field onto its next line (RFC 5322 section 2.2.3).
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_LINE_BREAK = re.compile(r"(\r\n|\r|\n)")
# One field with its continuation lines, in LF-only text.
_WHOLE_FIELD = re.compile(r"([\041-\071\073-\176]*):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)(?:\n|\Z)")
# The feed parser's test for a header line (email.feedparser.headerRE), less its
# "From " (only an mbox separator on the first line) and continuation cases.
_FIELD_LINE = re.compile(r"[\041-\071\073-\176]*:")


def split_head(raw: bytes) -> tuple[bytes, bytes]:
    """Split at the first empty line (RFC 5322 section 2.1), accepting LF-only mail."""
    if raw.startswith(b"\r\n"):
        return b"", raw[2:]
    if raw.startswith(b"\n"):
        return b"", raw[1:]
    # A blank line is LF, maybe CR, LF; CRLF CRLF ends where its LF CR LF does.
    crlf = raw.find(b"\n\r\n")
    lf = raw.find(b"\n\n", 0, len(raw) if crlf < 0 else crlf + 1)
    if lf >= 0:
        return raw[: lf + 2], raw[lf + 2 :]
    if crlf >= 0:
        return raw[: crlf + 3], raw[crlf + 3 :]
    return raw, b""


def header_items(block: bytes) -> list[tuple[str, str]]:
    """The ``(name, value)`` fields of a message's header block, unfolded, in order.

    Reads what the stdlib's feed parser with the ``compat32`` policy reads
    (mbox ``From `` lines are skipped, a line that is neither a field nor a
    continuation ends the block, a field without a name is dropped, values
    keep trailing blanks) at a fraction of its cost: on the SMTP hot path the
    feed parser's per-line machinery cost more than the rest of the index.
    Bytes are read as ASCII with ``surrogateescape``, as compat32 does.
    """
    text = block.decode("ascii", "surrogateescape")
    crlf_or_lf = text.replace("\r\n", "\n")
    quick = _well_formed_items(crlf_or_lf)
    if quick is not None:
        return quick
    if "\r" in crlf_or_lf:
        # A bare CR ends a line for the feed parser, but only CRLF and LF unfold
        # (RFC 5322 section 2.2.3), so such a fold keeps its CR: the slow way.
        pieces = _LINE_BREAK.split(text)
        lines, breaks = pieces[0::2], ["", *pieces[1::2]]
    else:
        lines, breaks = crlf_or_lf.split("\n"), []
    items: list[tuple[str, str]] = []
    name: str | None = None
    value: list[str] = []
    for number, line in enumerate(lines):
        if line[:1] in (" ", "\t"):
            if name is not None:
                if breaks:
                    value.append(breaks[number])
                value.append(line)
            continue
        if line.startswith("From "):
            continue  # an mbox separator; the feed parser skips it too
        if name:
            items.append((name, _FOLD.sub("", "".join(value)) if breaks else "".join(value)))
        name = None
        if not line or not _FIELD_LINE.match(line):
            break
        name, _, first = line.partition(":")
        value = [first.lstrip(" \t")]
    if name:
        items.append((name, _FOLD.sub("", "".join(value)) if breaks else "".join(value)))
    return items


def _well_formed_items(text: str) -> list[tuple[str, str]] | None:
    """:func:`header_items` for the usual block (fields up to the blank line, LF
    line ends), one regular expression match per field; ``None`` for anything else."""
    if "\r" in text:
        return None
    items: list[tuple[str, str]] = []
    at = 0
    for field in _WHOLE_FIELD.finditer(text):
        if field.start() != at:
            return None  # a line that is no field: the slow path knows what to do
        at = field.end()
        name, value = field.groups()
        if name:
            items.append((name, value.replace("\n", "")))
    return items if text.startswith("\n", at) or at == len(text) else None


def fields_by_name(items: Iterable[tuple[str, str]], *, utf8: bool) -> Fields:
    """Fields by lowercased name; ``utf8`` when the block had 8-bit bytes to read back."""
    found: Fields = {}
    for name, value in items:
        if utf8:
            # RFC 6532: raw UTF-8 in headers; compat32 left it as escaped bytes.
            value = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
        found.setdefault(name.strip().lower(), []).append(value)
    return found


def first_value(fields: Fields, name: str) -> str:
    """The first value of a field, or "" when the field is absent."""
    values = fields.get(name)
    return values[0] if values else ""
