"""The per-connection session: pymap's ``SessionInterface`` over our store.

:class:`Session` is pymap's ``BaseSession`` with the commands that touch many
messages rewritten to make one store call each: STORE (RFC 3501 section
6.4.6), COPY (6.4.7), MOVE (RFC 6851), EXPUNGE (6.4.3, and UID EXPUNGE of
RFC 4315) and the ``\\Seen`` side effect of FETCH are one transaction, and
FETCH and SEARCH load message bytes in batches.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from pymap.backend.session import BaseSession
from pymap.concurrent import Event as PymapEvent
from pymap.context import current_command
from pymap.exceptions import MailboxNotFound, MailboxReadOnly
from pymap.flags import FlagOp, PermanentFlags, SessionFlags
from pymap.interfaces.message import CachedMessage
from pymap.mailbox import MailboxSnapshot
from pymap.parsing.command.select import FetchCommand
from pymap.parsing.message import AppendMessage
from pymap.parsing.response.code import AppendUid, CopyUid
from pymap.parsing.specials import FetchRequirement, SearchKey, SequenceSet
from pymap.parsing.specials.flag import Flag, Seen
from pymap.search import SearchParams
from pymap.selected import SelectedMailbox

from mailcue_server.store import appends, changes, messages
from mailcue_server.store.messages import FlagMode
from mailcue_server.workers.imap.config import ImapConfig
from mailcue_server.workers.imap.mailboxes import (
    FLAG_MODES,
    FolderData,
    MailboxSet,
    folder_id_of,
)
from mailcue_server.workers.imap.message import ContentLoader, Message, flag_names
from mailcue_server.workers.imap.search import SearchView, criteria
from mailcue_server.workers.imap.selected import Selected

# FETCH items answered from the cached metadata, without the message bytes.
_METADATA_ITEMS = frozenset({b"UID", b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE"})
# SEARCH keys that read the header or body (SMALLER/LARGER use the stored size), and the
# envelope field each envelope key compares.
_ENVELOPE_KEYS = {
    b"BCC": b"bcc",
    b"CC": b"cc",
    b"FROM": b"from",
    b"SUBJECT": b"subject",
    b"TO": b"to",
    b"SENTBEFORE": b"date",
    b"SENTON": b"date",
    b"SENTSINCE": b"date",
}
_CONTENT_KEYS = frozenset({b"HEADER", b"BODY", b"TEXT", *_ENVELOPE_KEYS})


class Session(BaseSession[Message]):
    """One authenticated connection's view of a mailbox."""

    def __init__(self, address: str, config: ImapConfig) -> None:
        super().__init__(address)
        self._config = config
        self._folders = MailboxSet(config, address)

    @property
    def config(self) -> ImapConfig:
        return self._config

    @property
    def mailbox_set(self) -> MailboxSet:
        return self._folders

    async def _folder(self, name: str, *, try_create: bool = False) -> FolderData:
        try:
            return await self._folders.get_mailbox(name)
        except KeyError:
            raise MailboxNotFound(name, try_create=try_create) from None

    async def _get_selected(self, selected: SelectedMailbox) -> FolderData:
        # By folder id, not name: a folder renamed while selected stays selected.
        return await self._folders.get_by_id(folder_id_of(selected.mailbox_id))

    async def check_mailbox(
        self,
        selected: SelectedMailbox,
        *,
        wait_on: PymapEvent | None = None,
        housekeeping: bool = False,
    ) -> SelectedMailbox:
        """NOOP, CHECK and IDLE; a folder deleted meanwhile ends the session with BYE."""
        try:
            folder = await self._get_selected(selected)
        except MailboxNotFound:
            selected.set_deleted()
            return selected
        return await folder.update_selected(selected, wait_on=wait_on)

    async def list_mailboxes(
        self,
        ref_name: str,
        filter_: str,
        subscribed: bool = False,
        selected: SelectedMailbox | None = None,
    ) -> tuple[Iterable[tuple[str, str | None, Sequence[bytes]]], SelectedMailbox | None]:
        """LIST with the RFC 6154 special-use attributes (``\\Sent``, ``\\Trash``...)."""
        entries, updates = await super().list_mailboxes(ref_name, filter_, subscribed, selected)
        if subscribed:
            return entries, updates
        uses = self._folders.special_use
        return [
            (name, sep, [*attrs, uses[name].lstrip("\\").encode()] if name in uses else attrs)
            for name, sep, attrs in entries
        ], updates

    async def select_mailbox(
        self, name: str, readonly: bool = False
    ) -> tuple[MailboxSnapshot, SelectedMailbox]:
        """SELECT/EXAMINE (RFC 3501 sections 6.3.1, 6.3.2): counters from the same sync."""
        folder = await self._folder(name)
        selected = Selected(
            folder.mailbox_id,
            readonly,
            PermanentFlags(folder.permanent_flags),
            SessionFlags(folder.session_flags),
            selected_set=folder.selected_set,
            lookup=folder.folder_id,
        )
        await folder.update_selected(selected)
        first_unseen = next(
            (seq for seq, msg in _all(selected) if Seen not in msg.permanent_flags), None
        )
        mark = self._config.recent_marks.get(folder.folder_id, 0)
        recent = (
            sum(1 for _, msg in _all(selected) if msg.uid > mark)
            if readonly
            else selected.session_flags.recent
        )
        return folder.snapshot_with(recent=recent, first_unseen=first_unseen), selected

    async def fetch_messages(
        self, selected: SelectedMailbox, sequence_set: SequenceSet, set_seen: bool
    ) -> tuple[Iterable[tuple[int, Message]], SelectedMailbox]:
        """FETCH (RFC 3501 section 6.4.5): ``\\Seen`` in one write, bytes in batches."""
        folder = await self._get_selected(selected)
        targets = [
            (seq, _message(cached)) for seq, cached in selected.messages.get_all(sequence_set)
        ]
        fresh: dict[int, list[str]] = {}
        unseen = [msg.uid for _, msg in targets if Seen not in msg.permanent_flags]
        if set_seen and unseen:
            fresh = await self._set_flags(folder, unseen, ["\\Seen"], FlagMode.ADD)
        loader = ContentLoader(
            folder.folder_id, [(msg.uid, msg.size) for _, msg in targets], wanted=_fetch_reads()
        )
        result = []
        for seq, msg in targets:
            names = fresh.get(msg.uid)
            if names is None and not loader.wanted:
                result.append((seq, msg))  # metadata only: the cached message will do
                continue
            flags = None if names is None else [Flag(name.encode()) for name in names]
            result.append((seq, msg.with_loader(loader, flags=flags)))
        return result, await folder.update_selected(selected)

    async def search_mailbox(
        self, selected: SelectedMailbox, keys: frozenset[SearchKey]
    ) -> tuple[Iterable[tuple[int, Message]], SelectedMailbox]:
        """SEARCH (RFC 3501 section 6.4.4): pymap criteria; bytes only when a key reads them."""
        folder = await self._get_selected(selected)
        requirement = FetchRequirement.reduce(key.requirement for key in keys)
        params = SearchParams(selected, disabled=self.config.disable_search_keys)
        search = criteria(keys, params)
        targets = [
            (seq, _message(cached))
            for seq, cached in selected.messages.get_all(search.sequence_set)
        ]
        flat = _flatten(keys)
        loader = ContentLoader(
            folder.folder_id,
            [(msg.uid, msg.size) for _, msg in targets],
            wanted=any(key.value in _CONTENT_KEYS for key in flat),
        )
        fields = frozenset(_ENVELOPE_KEYS[k.value] for k in flat if k.value in _ENVELOPE_KEYS)
        found: list[tuple[int, Message]] = []
        for seq, msg in targets:
            candidate = msg.with_loader(loader) if loader.wanted else msg
            view = SearchView(candidate, requirement, await candidate.content(requirement), fields)
            if search.matches(seq, candidate, view):
                found.append((seq, candidate))
        return found, await folder.update_selected(selected)

    async def update_flags(
        self,
        selected: SelectedMailbox,
        sequence_set: SequenceSet,
        flag_set: frozenset[Flag],
        mode: FlagOp = FlagOp.REPLACE,
    ) -> tuple[Iterable[tuple[int, Message]], SelectedMailbox]:
        """STORE (RFC 3501 section 6.4.6) as one store write."""
        if selected.readonly:
            raise MailboxReadOnly()
        folder = await self._get_selected(selected)
        targets = [
            (seq, _message(cached)) for seq, cached in selected.messages.get_all(sequence_set)
        ]
        permanent = flag_names(selected.permanent_flags & flag_set)
        fresh = await self._set_flags(
            folder, [m.uid for _, m in targets], permanent, FLAG_MODES[mode]
        )
        loader = folder.loader()
        result: list[tuple[int, Message]] = []
        for seq, msg in targets:
            names = fresh.get(msg.uid)
            if names is None:
                result.append((seq, msg.with_loader(loader, expunged=True)))
                continue
            selected.session_flags.update(msg.uid, flag_set, mode)
            result.append((seq, msg.with_loader(loader, flags=[Flag(n.encode()) for n in names])))
        return result, await folder.update_selected(selected)

    async def copy_messages(
        self, selected: SelectedMailbox, sequence_set: SequenceSet, mailbox: str
    ) -> tuple[CopyUid | None, SelectedMailbox]:
        """COPY (RFC 3501 section 6.4.7) with COPYUID (RFC 4315)."""
        return await self._transfer(selected, sequence_set, mailbox, move=False)

    async def move_messages(
        self, selected: SelectedMailbox, sequence_set: SequenceSet, mailbox: str
    ) -> tuple[CopyUid | None, SelectedMailbox]:
        """MOVE (RFC 6851): one atomic store move; EXPUNGEs follow from the next sync."""
        return await self._transfer(selected, sequence_set, mailbox, move=True)

    async def expunge_mailbox(
        self, selected: SelectedMailbox, uid_set: SequenceSet | None = None
    ) -> SelectedMailbox:
        """EXPUNGE, and UID EXPUNGE (RFC 4315 section 2.1) when ``uid_set`` is given."""
        if selected.readonly:
            raise MailboxReadOnly()
        folder = await self._get_selected(selected)
        chosen = (
            None if uid_set is None else [uid for _, uid in selected.messages.get_uids(uid_set)]
        )
        if chosen is None or chosen:
            await messages.expunge(self.owner, folder.name, bus=self._config.bus, uids_=chosen)
        return await folder.update_selected(selected)

    async def _transfer(
        self, selected: SelectedMailbox, sequence_set: SequenceSet, mailbox: str, *, move: bool
    ) -> tuple[CopyUid | None, SelectedMailbox]:
        folder = await self._get_selected(selected)
        if move and selected.readonly:
            raise MailboxReadOnly()
        destination = await self._folder(mailbox, try_create=True)
        uids = [uid for _, uid in selected.messages.get_uids(sequence_set)]
        mapping: dict[int, int] = {}
        if uids and destination.folder_id == folder.folder_id:
            mapping = await self._duplicate(folder, selected, uids, move=move)
        elif uids:
            transfer = messages.move if move else messages.copy
            mapping = await transfer(
                self.owner, folder.name, uids, destination.name, bus=self._config.bus
            )
        copy_uid = CopyUid(destination.uid_validity, sorted(mapping.items())) if mapping else None
        return copy_uid, await folder.update_selected(selected)

    async def _duplicate(
        self, folder: FolderData, selected: SelectedMailbox, uids: list[int], *, move: bool
    ) -> dict[int, int]:
        """COPY or MOVE into the folder itself: each message stored again, with its flags
        and internal date, under a new UID (the store's transfer wants two folders).
        """
        raws = await changes.raw_messages(folder.folder_id, uids)
        mapping: dict[int, int] = {}
        for uid in uids:
            cached = selected.messages.get(uid)
            raw = raws.get(uid)
            if cached is None or raw is None:
                continue  # expunged meanwhile
            stored = await appends.append(
                self.owner,
                folder.name,
                raw,
                bus=self._config.bus,
                flags=flag_names(cached.permanent_flags),
                internal_date=cached.internal_date,
            )
            mapping[uid] = stored.uid
        if move and mapping:
            await messages.delete(self.owner, folder.name, list(mapping), bus=self._config.bus)
        return mapping

    async def append_messages(
        self,
        name: str,
        messages: Sequence[AppendMessage],
        selected: SelectedMailbox | None = None,
    ) -> tuple[AppendUid, SelectedMailbox | None]:
        """APPEND (RFC 3501 section 6.3.11, MULTIAPPEND RFC 3502).

        pymap hands ``\\Recent`` to some session that has the folder selected;
        here only the syncs do, so exactly one session gets it (section 2.3.2).
        """
        folder = await self._folder(name, try_create=True)
        uids = [(await folder.append(message)).uid for message in messages]
        return AppendUid(folder.uid_validity, uids), await self._load_updates(selected, folder)

    async def _set_flags(
        self, folder: FolderData, uids: list[int], names: list[str], mode: FlagMode
    ) -> dict[int, list[str]]:
        if not uids:
            return {}
        return await messages.set_flags(
            self.owner, folder.name, uids, names, bus=self._config.bus, mode=mode
        )


def _message(cached: CachedMessage) -> Message:
    if isinstance(cached, Message):
        return cached
    raise TypeError(f"unexpected cached message {cached!r}")  # pragma: no cover


def _all(selected: SelectedMailbox) -> Sequence[tuple[int, CachedMessage]]:
    return selected.messages.get_all(SequenceSet.all())


def _fetch_reads() -> bool:
    """Whether the running FETCH asks for anything beyond the cached metadata."""
    command = current_command.get(None)
    if not isinstance(command, FetchCommand):
        return True
    return any(attr.value not in _METADATA_ITEMS for attr in command.attributes)


def _flatten(keys: Iterable[SearchKey]) -> list[SearchKey]:
    """Every key, with those nested in OR and parenthesised sets."""
    flat: list[SearchKey] = []
    for key in keys:
        if key.value == b"KEYSET":
            flat += _flatten(key.filter_key_set)
        elif key.value == b"OR":
            flat += _flatten(key.filter_key_or)
        else:
            flat.append(key)
    return flat
