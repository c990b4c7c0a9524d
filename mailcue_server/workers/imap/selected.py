"""A session's selected folder: what it has seen, and the FLAGS it was told about.

RFC 3501 section 7.2.6: FLAGS lists the flags "defined in the mailbox" (the
system flags and the keywords in use); ``\\*`` belongs in PERMANENTFLAGS
alone (section 7.1). When a keyword first shows up in the selected folder,
the session hears a new FLAGS (and, read-write, PERMANENTFLAGS) before any
FETCH that carries it, as Dovecot does and imaptest checks.

:class:`SyncState` rides in pymap's ``SelectedMailbox.mod_sequence`` (it is
copied along on every fork); :class:`Selected` adds the keyword notice to
the untagged responses a fork produces.
"""

from __future__ import annotations

from collections.abc import Iterable

from pymap.parsing.command import Command
from pymap.parsing.response import UntaggedResponse
from pymap.parsing.response.code import PermanentFlags
from pymap.selected import SelectedMailbox

SYSTEM_FLAGS = (b"\\Answered", b"\\Flagged", b"\\Deleted", b"\\Seen", b"\\Draft")
"""In RFC 3501's order (its SELECT example), which is also Dovecot's."""


class SyncState:
    """What a session last saw of its folder.

    Attributes:
        modseq: The folder's ``highest_modseq`` at the last sync.
        uids: The UIDs the session knows exist.
        keywords: Every keyword seen in the folder since SELECT (never shrinks:
            a FLAGS response may not take back a flag a client was told of).
        keywords_grew: A keyword arrived that the client has not been told of.
    """

    __slots__ = ("keywords", "keywords_grew", "modseq", "uids")

    def __init__(self, modseq: int, uids: set[int]) -> None:
        self.modseq = modseq
        self.uids = uids
        self.keywords: set[bytes] = set()
        self.keywords_grew = False

    def see_keywords(self, stored: Iterable[str]) -> None:
        """Take note of the store's keyword strings (space-separated) of changed messages."""
        for text in stored:
            if text:
                fresh = set(text.encode("utf-8", "replace").split()) - self.keywords
                if fresh:
                    self.keywords |= fresh
                    self.keywords_grew = True


def flags_list(keywords: Iterable[bytes], *, wildcard: bool = False) -> bytes:
    """``(\\Answered ... kw1 kw2)``, with ``\\*`` last for PERMANENTFLAGS."""
    items = [*SYSTEM_FLAGS, *sorted(keywords)]
    if wildcard:
        items.append(b"\\*")
    return b"(" + b" ".join(items) + b")"


def flags_responses(keywords: Iterable[bytes], *, readonly: bool) -> list[UntaggedResponse]:
    """``* FLAGS`` and ``* OK [PERMANENTFLAGS]`` as SELECT and EXAMINE send them."""
    known = sorted(keywords)
    flags = KeywordNotice(b"FLAGS " + flags_list(known))
    if readonly:
        permanent = KeywordNotice(b"Read-only mailbox.", _Permanent(b"()"), condition=b"OK")
    else:
        listed = flags_list(known, wildcard=True)
        permanent = KeywordNotice(b"Flags permitted.", _Permanent(listed), condition=b"OK")
    return [flags, permanent]


class KeywordNotice(UntaggedResponse):
    """FLAGS or PERMANENTFLAGS; the state machine moves these ahead of a command's FETCHes."""


class _Permanent(PermanentFlags):
    """The PERMANENTFLAGS code with the list in our order (pymap sorts ``\\*`` first)."""

    def __init__(self, listed: bytes) -> None:
        super().__init__([])
        self._raw = b"[PERMANENTFLAGS " + listed + b"]"


class Selected(SelectedMailbox):
    """pymap's selected mailbox whose forks announce new keywords."""

    __slots__ = ()

    @property
    def sync(self) -> SyncState | None:
        state = self.mod_sequence
        return state if isinstance(state, SyncState) else None

    def take_keywords(self) -> frozenset[bytes]:
        """The folder's keywords for a SELECT's FLAGS, which also tells the client of them."""
        sync = self.sync
        if sync is None:
            return frozenset()
        sync.keywords_grew = False
        return frozenset(sync.keywords)

    def fork(self, command: Command) -> tuple[SelectedMailbox, Iterable[UntaggedResponse]]:
        forked, untagged = super().fork(command)
        sync = self.sync
        if sync is None or not sync.keywords_grew:
            return forked, untagged
        sync.keywords_grew = False
        return forked, [*flags_responses(sync.keywords, readonly=self.readonly), *untagged]
