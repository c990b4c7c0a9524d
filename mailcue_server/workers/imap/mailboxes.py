"""pymap's mailbox interfaces over our store: one folder's data, and the set of folders.

:class:`FolderData` keeps a selected folder's session view in step with the
database (RFC 3501 section 7.3.1 EXISTS, 7.4.1 EXPUNGE, 7.4.2 FETCH flags):
each sync reads the folder row, and only when ``highest_modseq`` moved, the
messages changed since. Expunges are rare and cost one extra UID scan. The
UIDs and UIDVALIDITY are the store's; pymap only caches them.

IDLE (RFC 2177) waits on the event bus: it subscribes first, then checks
the folder once more, so a change committed in between is never missed, and
re-reads the folder every ``idle_recheck`` seconds in case an event was lost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime

from pymap.backend.mailbox import MailboxDataInterface, MailboxSetInterface
from pymap.concurrent import Event as PymapEvent
from pymap.context import subsystem
from pymap.exceptions import MailboxNotFound
from pymap.flags import FlagOp
from pymap.interfaces.message import CachedMessage
from pymap.listtree import ListTree
from pymap.mailbox import MailboxSnapshot
from pymap.parsing.message import AppendMessage
from pymap.parsing.specials import ObjectId
from pymap.parsing.specials.flag import Flag, Recent, Wildcard, get_system_flags
from pymap.selected import SelectedMailbox, SelectedSet

from mailcue_server.errors import Conflict, NotFound
from mailcue_server.events.bus import Event, EventType, SubscriptionDropped, channel_for
from mailcue_server.store import appends, changes, folders, mailboxes, messages
from mailcue_server.store.changes import FolderState
from mailcue_server.store.messages import FlagMode
from mailcue_server.workers.imap.config import ImapConfig
from mailcue_server.workers.imap.message import ContentLoader, Message, flag_names
from mailcue_server.workers.imap.names import LinearListTree
from mailcue_server.workers.imap.selected import SyncState

FLAG_MODES = {
    FlagOp.ADD: FlagMode.ADD,
    FlagOp.DELETE: FlagMode.REMOVE,
    FlagOp.REPLACE: FlagMode.REPLACE,
}
_PERMANENT = frozenset(get_system_flags() - {Recent} | {Wildcard})


def folder_id_of(mailbox_id: ObjectId) -> int:
    return int(mailbox_id.value[1:])


class FolderData(MailboxDataInterface[Message]):
    """One folder of the logged-in mailbox (pymap ``MailboxDataInterface``)."""

    def __init__(self, config: ImapConfig, address: str, state: FolderState) -> None:
        self._config = config
        self._address = address
        self.state = state

    @property
    def folder_id(self) -> int:
        return self.state.id

    @property
    def name(self) -> str:
        return self.state.name

    @property
    def mailbox_id(self) -> ObjectId:
        return ObjectId(b"F%d" % self.state.id)

    @property
    def readonly(self) -> bool:
        return False

    @property
    def uid_validity(self) -> int:
        return self.state.uid_validity

    @property
    def permanent_flags(self) -> frozenset[Flag]:
        """System flags and any keyword (``\\*``, RFC 3501 section 7.1 PERMANENTFLAGS)."""
        return _PERMANENT

    @property
    def session_flags(self) -> frozenset[Flag]:
        return frozenset({Recent})

    @property
    def selected_set(self) -> SelectedSet:
        return self._config.selected_set(self.state.id)

    def loader(self) -> ContentLoader:
        return ContentLoader(self.state.id)

    # -- keeping a session in step --------------------------------------------------------

    async def update_selected(
        self, selected: SelectedMailbox, *, wait_on: PymapEvent | None = None
    ) -> SelectedMailbox:
        sync = selected.mod_sequence
        if wait_on is not None and isinstance(sync, SyncState):
            await self._wait(sync, wait_on)
        state = await changes.folder_state(self.state.id)
        if state is None:
            selected.set_deleted()
            return selected
        self.state = state
        if not isinstance(sync, SyncState):
            metas = await changes.changed_since(state.id, None)
            selected.mod_sequence = SyncState(state.highest_modseq, {m.uid for m in metas})
            self._announce(selected, metas, [])
            return selected
        if state.highest_modseq == sync.modseq:
            # Expunges held back during FETCH/STORE/SEARCH go out now (RFC 3501 section
            # 7.4.1), unless this command hides them too.
            selected.add_updates([], [])
            return selected
        metas = await changes.changed_since(state.id, sync.modseq)
        fresh = [m for m in metas if m.uid not in sync.uids]
        gone: list[int] = []
        if len(sync.uids) + len(fresh) != state.messages:
            present = set(await changes.uids(state.id))
            gone = sorted(sync.uids - present)
            metas = [m for m in metas if m.uid in present]
        sync.uids.difference_update(gone)
        sync.uids.update(m.uid for m in metas)
        sync.modseq = state.highest_modseq
        self._announce(selected, metas, gone)
        return selected

    def _announce(
        self, selected: SelectedMailbox, metas: list[changes.MessageMeta], gone: list[int]
    ) -> None:
        sync = selected.mod_sequence
        if isinstance(sync, SyncState):
            sync.see_keywords(m.keywords for m in metas)
        loader = self.loader()
        mark = self._config.recent_marks.get(self.state.id, 0)
        recent = [m.uid for m in metas if m.uid > mark]
        if recent and not selected.readonly:
            # The first session to see a message gets \Recent (RFC 3501 section 2.3.2).
            for uid in recent:
                selected.session_flags.add_recent(uid)
            self._config.recent_marks[self.state.id] = max(recent)
        selected.add_updates([Message.from_meta(m, loader) for m in metas], gone)

    async def _wait(self, sync: SyncState, done: PymapEvent) -> None:
        """Block until the folder changes, ``done`` is set, or the recheck interval passes."""
        async with self._config.bus.subscribe([channel_for(self._address)]) as events:
            state = await changes.folder_state(self.state.id)
            if state is None or state.highest_modseq != sync.modseq or done.is_set():
                return  # pymap's or_event() ignores an event that is already set
            changed = subsystem.get().new_event()
            watcher = asyncio.create_task(self._watch(events, changed))
            try:
                await done.or_event(changed).wait(timeout=self._config.idle_recheck)
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    async def _watch(self, events: AsyncIterator[Event], changed: PymapEvent) -> None:
        try:
            async for event in events:
                if self._concerns(event):
                    break
        except SubscriptionDropped:
            pass  # events were lost: re-read the folder
        changed.set()

    def _concerns(self, event: Event) -> bool:
        if event.type is EventType.FOLDER_CHANGED or event.folder is None:
            return True
        return self.state.name in (event.folder, event.data.get("from_folder"))

    # -- single-message operations (the session batches the common ones) ---------------------

    async def append(self, append_msg: AppendMessage, *, recent: bool = False) -> Message:
        """APPEND (RFC 3501 section 6.3.11) through the store's single write path."""
        stored = await appends.append(
            self._address,
            self.state.name,
            append_msg.literal,
            bus=self._config.bus,
            flags=flag_names(append_msg.flag_set),
            internal_date=append_msg.when,
        )
        flags = frozenset(f for f in append_msg.flag_set if f != Recent)
        when = append_msg.when or datetime.now(UTC)
        return Message(stored.uid, when, flags, size=len(append_msg.literal), loader=self.loader())

    async def copy(self, uid: int, destination: FolderData, *, recent: bool = False) -> int | None:
        mapping = await messages.copy(
            self._address, self.state.name, [uid], destination.name, bus=self._config.bus
        )
        return mapping.get(uid)

    async def move(self, uid: int, destination: FolderData, *, recent: bool = False) -> int | None:
        mapping = await messages.move(
            self._address, self.state.name, [uid], destination.name, bus=self._config.bus
        )
        return mapping.get(uid)

    async def get(self, uid: int, cached_msg: CachedMessage) -> Message:
        return Message(
            uid,
            cached_msg.internal_date,
            cached_msg.permanent_flags,
            size=getattr(cached_msg, "size", 0),
            loader=self.loader(),
        )

    async def update(
        self, uid: int, cached_msg: CachedMessage, flag_set: frozenset[Flag], mode: FlagOp
    ) -> Message:
        result = await messages.set_flags(
            self._address,
            self.state.name,
            [uid],
            flag_names(flag_set),
            bus=self._config.bus,
            mode=FLAG_MODES[mode],
        )
        message = await self.get(uid, cached_msg)
        if uid not in result:
            return message.with_loader(self.loader(), expunged=True)
        return message.with_loader(self.loader(), flags=[Flag(n.encode()) for n in result[uid]])

    async def delete(self, uids: Iterable[int]) -> None:
        await messages.expunge(
            self._address, self.state.name, bus=self._config.bus, uids_=list(uids)
        )

    async def claim_recent(self, selected: SelectedMailbox) -> None:
        """Nothing to do: syncs hand out ``\\Recent`` as they see new UIDs."""

    async def cleanup(self) -> None:
        """Nothing to do: the store has no housekeeping to run on CHECK."""

    async def snapshot(self) -> MailboxSnapshot:
        """STATUS counters (RFC 3501 section 6.3.10) from the folder row."""
        mark = self._config.recent_marks.get(self.state.id, 0)
        recent = await changes.count_above(self.state.id, mark)
        return self.snapshot_with(recent=recent, first_unseen=None)

    def snapshot_with(self, *, recent: int, first_unseen: int | None) -> MailboxSnapshot:
        state = self.state
        return MailboxSnapshot(
            self.mailbox_id,
            False,
            state.uid_validity,
            self.permanent_flags,
            self.session_flags,
            state.messages,
            recent,
            state.unseen,
            first_unseen,
            state.uid_next,
        )


class MailboxSet(MailboxSetInterface["FolderData"]):
    """The folders of the logged-in mailbox (pymap ``MailboxSetInterface``)."""

    def __init__(self, config: ImapConfig, address: str) -> None:
        self._config = config
        self._address = address
        self.special_use: dict[str, str] = {}

    @property
    def delimiter(self) -> str:
        return folders.DELIMITER

    async def set_subscribed(self, name: str, subscribed: bool) -> None:
        kept = self._config.kept_subscriptions(self._address)
        try:
            await folders.set_subscribed(self._address, name, subscribed, bus=self._config.bus)
        except NotFound:
            # A deleted folder's kept subscription can still be dropped (or renewed).
            if name not in kept:
                raise MailboxNotFound(name) from None
            if not subscribed:
                kept.discard(name)

    async def list_subscribed(self) -> ListTree:
        names = await folders.subscribed_names(self._address)
        kept = self._config.kept_subscriptions(self._address)
        return LinearListTree(self.delimiter).update(*names, *sorted(kept - set(names)))

    async def list_mailboxes(self) -> ListTree:
        states = await folders.folder_states(self._address)
        self.special_use = {s.name: s.special_use for s in states if s.special_use}
        return LinearListTree(self.delimiter).update(*(s.name for s in states))

    async def get_mailbox(self, name: str) -> FolderData:
        try:
            folder = await mailboxes.get_folder(self._address, name)
        except NotFound:
            raise KeyError(name) from None
        return FolderData(self._config, self._address, changes.state_of(folder))

    async def get_by_id(self, folder_id: int) -> FolderData:
        state = await changes.folder_state(folder_id)
        if state is None:
            raise MailboxNotFound(str(folder_id))
        return FolderData(self._config, self._address, state)

    async def add_mailbox(self, name: str) -> ObjectId:
        """CREATE: not subscribed, unless the name kept its subscription through a DELETE."""
        name = name.rstrip(self.delimiter)
        kept = self._config.kept_subscriptions(self._address)
        try:
            folder = await mailboxes.create_folder(
                self._address, name, bus=self._config.bus, subscribed=name in kept
            )
        except Conflict:
            raise ValueError(name) from None
        kept.discard(folder.name)
        return ObjectId(b"F%d" % folder.id)

    async def delete_mailbox(self, name: str) -> None:
        """DELETE; the subscription stays (RFC 3501 section 6.3.9) until UNSUBSCRIBE."""
        try:
            folder = await mailboxes.get_folder(self._address, name)
            await folders.delete_folder(self._address, name, bus=self._config.bus)
        except NotFound:
            raise KeyError(name) from None
        if folder.subscribed:
            self._config.kept_subscriptions(self._address).add(folder.name)

    async def rename_mailbox(self, before: str, after: str) -> None:
        try:
            await folders.rename_folder(self._address, before, after, bus=self._config.bus)
        except NotFound:
            raise KeyError(before) from None
        except Conflict:
            raise ValueError(after) from None
