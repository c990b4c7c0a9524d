"""Mailbox names and LIST patterns, decoded and matched by our own linear code.

pymap 0.36.7 gets both wrong in ways a client can use against the whole
process, because its parser runs on the event loop:

- its modified UTF-7 decoder (RFC 3501 section 5.1.3) loops forever on an
  ``&`` with no closing ``-``: one unauthenticated ``a SELECT &A`` froze
  HTTP, SMTP, IMAP and POP3 alike; bad base64 ended in ``BYE [SERVERBUG]``;
- its LIST matcher turns ``*`` and ``%`` into a backtracking regular
  expression, which ``*%*%...x`` drives into exponential time.

:func:`install` points pymap's parsers at :func:`decode_name`, which is
strict and linear and turns every malformed name into a parse error (pymap
answers ``BAD``), and :class:`LinearListTree` matches patterns by walking
the name once per pattern position.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from pymap.listtree import ListEntry, ListTree
from pymap.parsing.exceptions import NotParseable

MAX_NAME_OCTETS = 1024
"""Longest encoded mailbox name or LIST pattern accepted; longer ones get BAD."""

_MODIFIED_BASE64 = re.compile(rb"[A-Za-z0-9+,]+")


def decode_name(data: bytes) -> str:
    """Decode a modified UTF-7 mailbox name.

    Raises:
        ValueError: too long, 8-bit or control octets, an unterminated or
            empty-but-not-``&-`` shift, bad base64, or base64 used for text
            that must stay printable ASCII (RFC 3501 section 5.1.3).
    """
    if len(data) > MAX_NAME_OCTETS:
        raise ValueError(f"longer than {MAX_NAME_OCTETS} octets")
    out: list[str] = []
    position = 0
    while position < len(data):
        octet = data[position]
        if octet != 0x26:  # not "&": printable ASCII stands for itself
            if not 0x20 <= octet <= 0x7E:
                raise ValueError("8-bit or control octet in a mailbox name")
            out.append(chr(octet))
            position += 1
            continue
        end = data.find(b"-", position + 1)
        if end < 0:
            raise ValueError("'&' without its closing '-'")
        shifted = data[position + 1 : end]
        out.append(_decode_shifted(shifted) if shifted else "&")
        position = end + 1
    return "".join(out)


def _decode_shifted(chunk: bytes) -> str:
    """The text of one ``&...-`` run: modified base64 of UTF-16BE, no padding."""
    if not _MODIFIED_BASE64.fullmatch(chunk):
        raise ValueError("not modified base64")
    try:
        raw = base64.b64decode(chunk.replace(b",", b"/") + b"=" * (-len(chunk) % 4))
        text = raw.decode("utf-16-be")
    except (binascii.Error, UnicodeDecodeError):
        raise ValueError("not UTF-16 in modified base64") from None
    if any(0x20 <= ord(char) <= 0x7E for char in text):
        raise ValueError("printable ASCII must not be base64-encoded")
    return text


def _decode_for_parser(data: bytes) -> str:
    """:func:`decode_name` with errors as pymap's parse error, which it answers BAD."""
    try:
        return decode_name(bytes(data))
    except ValueError:
        raise NotParseable(memoryview(bytes(data))) from None


def install() -> None:
    """Make pymap's command parsers decode names with :func:`decode_name`.

    They imported pymap's decoder by name, so the replacement goes into the
    modules that use it. Idempotent.
    """
    from pymap.parsing.command import auth as auth_commands
    from pymap.parsing.specials import mailbox as mailbox_special

    mailbox_special.modutf7_decode = _decode_for_parser  # type: ignore[attr-defined]
    auth_commands.modutf7_decode = _decode_for_parser  # type: ignore[attr-defined]


def pattern_matches(pattern: str, name: str, delimiter: str) -> bool:
    """Whether ``name`` matches a LIST pattern (``*`` anything, ``%`` anything but the
    delimiter), in O(len(pattern) * len(name)) time whatever the pattern.

    A set of positions in the pattern is carried along the name; a wildcard
    position stays alive while it may still absorb characters.
    """
    states = _closure({0}, pattern)
    for char in name:
        following: set[int] = set()
        for index in states:
            if index == len(pattern):
                continue
            wanted = pattern[index]
            if wanted == "*" or (wanted == "%" and char != delimiter):
                following.add(index)
            elif wanted == char:
                following.add(index + 1)
        if not following:
            return False
        states = _closure(following, pattern)
    return len(pattern) in states


def _closure(states: set[int], pattern: str) -> set[int]:
    """Add the positions reached by letting wildcards match nothing."""
    result = set(states)
    for index in sorted(states):
        while index < len(pattern) and pattern[index] in "*%":
            index += 1
            result.add(index)
    return result


class LinearListTree(ListTree):
    """pymap's mailbox tree with a LIST matcher that cannot backtrack."""

    __slots__: list[str] = []

    def list_matching(self, ref_name: str, filter_: str) -> Iterable[ListEntry]:
        pattern = ref_name + filter_
        delimiter: str = self._delimiter
        for entry in self.list():
            name = entry.name
            if name == "INBOX":
                # INBOX is case-insensitive (RFC 3501 section 5.1); other names are not.
                if pattern_matches(pattern.upper(), name, delimiter):
                    yield entry
            elif pattern_matches(pattern, name, delimiter):
                yield entry
