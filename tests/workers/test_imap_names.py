"""Modified UTF-7 mailbox names and LIST patterns, decoded and matched by our own code.

The decoder is checked against RFC 3501's own examples and against what a
strict server refuses; the matcher against pymap's regular-expression
matcher on every short pattern (the oracle is safe at these sizes), and for
time on the pattern that used to stall the process.
"""

from __future__ import annotations

import itertools
import time

import pytest
from pymap.listtree import ListTree

from mailcue_server.workers.imap.names import (
    MAX_NAME_OCTETS,
    LinearListTree,
    decode_name,
    pattern_matches,
)


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        (b"INBOX", "INBOX"),
        (b"&-", "&"),
        (b"Tom &- Jerry", "Tom & Jerry"),
        (b"Entw&APw-rfe", "Entwürfe"),
        # RFC 3501 section 5.1.3's example.
        (b"~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語"),
        (b"&2D3eAA-", "\U0001f600"),  # a surrogate pair
        (b"", ""),
    ],
)
def test_valid_names_decode(encoded: bytes, decoded: str) -> None:
    assert decode_name(encoded) == decoded


@pytest.mark.parametrize(
    "encoded",
    [
        b"&A",  # no closing "-": looped forever in pymap 0.36.7
        b"&",
        b"a&b",
        b"!#$$&'+,-",  # not base64 inside the shift: SERVERBUG in pymap
        b"&AGE-",  # "a" in base64: printable ASCII must stand for itself
        b"&Zm-",  # 12 bits: not whole UTF-16 units
        b"&2D0-",  # a lone high surrogate
        b"caf\xc3\xa9",  # raw 8-bit
        b"tab\there",
        b"a" * (MAX_NAME_OCTETS + 1),
    ],
)
def test_malformed_names_are_refused(encoded: bytes) -> None:
    with pytest.raises(ValueError):
        decode_name(encoded)


def test_an_unterminated_shift_of_any_length_is_refused_at_once() -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError):
        decode_name(b"&" + b"A" * (MAX_NAME_OCTETS - 1))
    assert time.perf_counter() - started < 0.1


NAMES = ["INBOX", "Sent", "a", "a/b", "a/b/c", "ab", "b/a", "x", "a/x", "ba/x", "%"]


def test_the_matcher_agrees_with_pymaps_on_every_short_pattern() -> None:
    tree_ours = LinearListTree("/").update(*NAMES)
    tree_theirs = ListTree("/").update(*NAMES)
    alphabet = ["a", "b", "/", "*", "%", "x"]
    for length in range(5):
        for letters in itertools.product(alphabet, repeat=length):
            pattern = "".join(letters)
            ours = [entry.name for entry in tree_ours.list_matching("", pattern)]
            theirs = [entry.name for entry in tree_theirs.list_matching("", pattern)]
            assert ours == theirs, pattern


def test_inbox_matches_case_insensitively_and_other_names_do_not() -> None:
    tree = LinearListTree("/").update("INBOX", "Sent")
    assert [e.name for e in tree.list_matching("", "inbox")] == ["INBOX"]
    assert [e.name for e in tree.list_matching("", "sent")] == []


def test_a_pattern_built_to_backtrack_takes_linear_time() -> None:
    hostile = "*%" * 30 + "x"
    name = "a" * 200

    started = time.perf_counter()
    assert not pattern_matches(hostile, name, "/")
    # pymap's regex took 12 s here and doubled with every two more wildcards.
    assert time.perf_counter() - started < 0.5
