"""Delivery of SMTP/LMTP mail into INBOXes, and the group commit of the SMTP hot path.

Part of the single write path (with ``store/messages.py``): each function
commits one transaction and then publishes its events on the bus it is handed.

The hot path is shaped by what one message costs the event loop (``scripts/
bench_smtp.py``): an :class:`~mailcue_server.store.inbox_cache.InboxCache`
spares the folder lookup, and
:func:`~mailcue_server.store.message_rows.insert_into_inboxes` binds rows
without model instances and, on SQLite, runs the whole transaction in one
call into the connection's thread.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tortoise.backends.base.client import TransactionalDBClient

from mailcue_server.events.bus import Event, EventBus, publish_quietly
from mailcue_server.mail.index import IndexFields, index_message
from mailcue_server.store import aliases
from mailcue_server.store.envelopes import SmtpEnvelope
from mailcue_server.store.inbox_cache import InboxCache
from mailcue_server.store.mail_models import INBOX, Folder, Message
from mailcue_server.store.mailboxes import normalise_address
from mailcue_server.store.message_rows import (
    InboxChanged,
    InboxCopies,
    RowInsert,
    Stored,
    insert_into_inboxes,
    received_event,
)
from mailcue_server.store.new_mailboxes import make_mailboxes

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Incoming:
    """One message delivered by SMTP or LMTP.

    Attributes:
        raw: The exact bytes to store (our ``Received`` header included).
        recipients: Envelope recipients; each gets a copy in its INBOX.
        mail_from: The envelope sender, ``""`` for ``<>``.
        source: Where it came from (``smtp``, ``lmtp``, ``inject``...), for events.
        received_at: The IMAP internal date; the commit time when ``None``.
        fields: The index of ``raw`` if already computed (:class:`IngestQueue` does
            that in the submitter's task, while the previous transaction runs).
        expand_aliases: Apply the enabled aliases to ``recipients`` first (SMTP
            receipt, ``store/aliases.py``); :func:`ingest_many` looks them up
            once for all such messages of a batch.
        envelope: The SMTP transaction, stored with each copy (with the
            recipients that led to that copy); ``None`` stores none.
    """

    raw: bytes
    recipients: tuple[str, ...]
    mail_from: str = ""
    source: str = "smtp"
    received_at: datetime | None = None
    fields: IndexFields | None = None
    expand_aliases: bool = False
    envelope: SmtpEnvelope | None = None


@dataclass(frozen=True, slots=True)
class IngestResult:
    """The outcome of one delivery: stored copies, and recipients without a mailbox."""

    stored: tuple[Stored, ...]
    unknown: tuple[str, ...] = ()


async def ingest(
    raw: bytes,
    recipients: Sequence[str],
    *,
    bus: EventBus,
    mail_from: str = "",
    source: str = "smtp",
    create_mailboxes: bool = True,
) -> IngestResult:
    """Deliver one message to the INBOX of each recipient (one transaction).

    Args:
        raw: The exact bytes to store.
        recipients: Envelope recipients.
        bus: Where ``email.received`` (and ``mailbox.created``) are published after commit.
        mail_from: The envelope sender.
        source: For the event (``smtp``, ``lmtp``, ``inject``...).
        create_mailboxes: Test mode: an unknown recipient gets a mailbox. When
            ``False`` (production) unknown recipients are reported, not created.
    """
    item = Incoming(raw=raw, recipients=tuple(recipients), mail_from=mail_from, source=source)
    [result] = await ingest_many([item], bus=bus, create_mailboxes=create_mailboxes)
    return result


async def ingest_many(
    batch: Sequence[Incoming],
    *,
    bus: EventBus,
    create_mailboxes: bool = True,
    inboxes: InboxCache | None = None,
    alias_cache: aliases.AliasCache | None = None,
) -> list[IngestResult]:
    """Deliver several messages in one transaction (group commit).

    Mailboxes created for unknown recipients commit first, each on its own
    (a concurrent creator may win; its mailbox is used). Then every copy is
    inserted in a single transaction and the events follow its commit.

    Args:
        batch: The messages.
        bus: Where the events go after commit.
        create_mailboxes: Test mode: unknown recipients get a mailbox.
        inboxes: Folder ids remembered from earlier batches (checked, see
            :class:`~mailcue_server.store.inbox_cache.InboxCache`).
        alias_cache: The enabled aliases remembered from earlier batches.

    Returns:
        One result per item, in order.
    """
    indexed = [item.fields or index_message(item.raw) for item in batch]
    targets = [_unique(normalise_address(r) for r in item.recipients) for item in batch]
    finals: dict[str, tuple[str, ...]] = {}
    if any(item.expand_aliases for item in batch):
        targets, finals = await _with_aliases(batch, targets, alias_cache)
    envelopes = [_envelope_rows(item, finals) for item in batch]
    wanted = {address for addresses in targets for address in addresses}
    cached = inboxes.lookup(wanted) if inboxes is not None else {}
    plan = _Plan(batch, indexed, targets, envelopes)
    if cached:
        try:
            folders = await _resolve(wanted, cached, bus, create_mailboxes, inboxes)
            return await _deliver(plan, folders, set(cached), bus)
        except InboxChanged as stale:
            assert inboxes is not None  # noqa: S101 - only cached entries go stale
            inboxes.forget(stale.addresses)
    folders = await _resolve(wanted, {}, bus, create_mailboxes, inboxes)
    return await _deliver(plan, folders, set(), bus)


@dataclass(frozen=True, slots=True)
class _Plan:
    """A batch with what was worked out for it before any folder is known."""

    batch: Sequence[Incoming]
    indexed: list[IndexFields]
    targets: list[tuple[str, ...]]
    envelopes: list[dict[str, str] | None]
    """Per message, the envelope (JSON text) of each final address's copy."""


def _envelope_rows(item: Incoming, finals: dict[str, tuple[str, ...]]) -> dict[str, str] | None:
    """The envelope stored with each copy of ``item``, by final address.

    Each copy names the recipients (as the client wrote them) that led to it:
    the recipient itself, or the alias that expanded to it.
    """
    envelope = item.envelope
    if envelope is None:
        return None
    led: dict[str, list[str]] = {}
    for rcpt in item.recipients:
        address = normalise_address(rcpt)
        reached = finals.get(address, ()) if item.expand_aliases else (address,)
        for final in reached:
            led.setdefault(normalise_address(final), []).append(rcpt)
    return {address: envelope.encoded(rcpts) for address, rcpts in led.items()}


async def _with_aliases(
    batch: Sequence[Incoming],
    targets: list[tuple[str, ...]],
    cache: aliases.AliasCache | None = None,
) -> tuple[list[tuple[str, ...]], dict[str, tuple[str, ...]]]:
    """Each message's final recipients, with one alias lookup (per hop) for the batch.

    An address's expansion does not depend on the other addresses looked up
    with it, so a batch gets what each message would get on its own.

    Returns:
        The final recipients of each message, and the final addresses of
        each recipient looked up.
    """
    wanted = dict.fromkeys(
        address
        for item, addresses in zip(batch, targets, strict=True)
        if item.expand_aliases
        for address in addresses
    )
    expanded = await aliases.expand_recipients(wanted, cache)
    if expanded.cycles:
        log.warning("alias loop for %s: %s", list(expanded.looped), "; ".join(expanded.cycles))
    finals = expanded.by_recipient
    expanded_targets = [
        _unique(
            normalise_address(final) for address in addresses for final in finals.get(address, ())
        )
        if item.expand_aliases
        else addresses
        for item, addresses in zip(batch, targets, strict=True)
    ]
    return expanded_targets, finals


async def _resolve(
    wanted: set[str],
    cached: dict[str, int],
    bus: EventBus,
    create_mailboxes: bool,
    inboxes: InboxCache | None,
) -> dict[str, int]:
    """The INBOX folder id of every wanted address that has (or, in test mode, gets) one."""
    folders = dict(cached)
    missing = wanted - folders.keys()
    if not missing:
        return folders
    found = await _inbox_ids(missing)
    unknown = missing - found.keys()
    if unknown and create_mailboxes:
        made = await make_mailboxes(unknown, bus=bus)  # an invalid address stays unknown
        found.update(made.inboxes)
    if inboxes is not None:
        inboxes.remember(found)
    folders.update(found)
    return folders


async def _deliver(
    plan: _Plan, folders: dict[str, int], cached: set[str], bus: EventBus
) -> list[IngestResult]:
    db = Message._meta.db
    if isinstance(db, TransactionalDBClient):
        raise RuntimeError("store writes publish events; do not call them inside a transaction")
    insert = RowInsert.for_connection(db)
    now = datetime.now(UTC)
    inboxes: dict[int, InboxCopies] = {}
    for item, fields, addresses, envelopes in zip(
        plan.batch, plan.indexed, plan.targets, plan.envelopes, strict=True
    ):
        when = item.received_at or now
        for address in addresses:
            folder_id = folders.get(address)
            if folder_id is None:
                continue
            inbox = inboxes.get(folder_id)
            if inbox is None:
                inbox = inboxes[folder_id] = InboxCopies(folder_id, address, address in cached)
            elif inbox.address != address:  # one INBOX for two addresses: a stale entry
                raise InboxChanged([inbox.address, address])
            envelope = envelopes.get(address) if envelopes is not None else None
            inbox.rows.append(insert.values(folder_id, item.raw, fields, 0, "", when, envelope))
            inbox.size += len(item.raw)
    ordered = [inboxes[folder_id] for folder_id in sorted(inboxes)]  # lock order: by id
    reserved = await insert_into_inboxes(db, insert, ordered)
    results: list[IngestResult] = []
    events: list[Event] = []
    next_uid = {folder_id: taken.first_uid for folder_id, taken in reserved.items()}
    for item, fields, addresses in zip(plan.batch, plan.indexed, plan.targets, strict=True):
        stored: list[Stored] = []
        for address in addresses:
            taken = reserved.get(folders.get(address, -1))
            if taken is None:
                continue  # no mailbox (production mode), or deleted meanwhile
            uid = next_uid[taken.folder_id]
            next_uid[taken.folder_id] += 1
            stored.append(Stored(address, INBOX, uid, taken.uid_validity))
            events.append(received_event(address, INBOX, uid, fields, len(item.raw), item.source))
        delivered = {s.mailbox for s in stored}
        results.append(
            IngestResult(tuple(stored), tuple(a for a in addresses if a not in delivered))
        )
    _log_received(plan.batch, results)
    await publish_quietly(bus, events)
    return results


def _log_received(batch: Sequence[Incoming], results: list[IngestResult]) -> None:
    """A line per stored copy, as users of any mail server expect, in one INFO record per commit.

    A record costs about 25 us of the event loop (record, timestamp, format,
    a write): one per message was about 4 % of the hot path. Under load a
    commit carries several messages (about 3 in ``scripts/bench_smtp.py``), so
    one record per commit costs a fraction; a lone message gets a one-line record.
    """
    if not log.isEnabledFor(logging.INFO):
        return
    lines = [
        f"received {stored.uid} for <{_printable(stored.mailbox)}> from "
        f"<{_printable(item.mail_from)}>, {len(item.raw)} bytes"
        for item, result in zip(batch, results, strict=True)
        for stored in result.stored
    ]
    if lines:
        log.info("%s", "\n".join(lines))


def _printable(text: str) -> str:
    """An address as a log may show it: a control character cannot start a fake line."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


class IngestQueue:
    """Group commit for the SMTP hot path: concurrent deliveries share transactions.

    Each :meth:`submit` waits for the commit of the transaction that carries
    its message, so the SMTP ``250`` still means durable. No timer: while
    one transaction runs, the next deliveries queue up and go together in the
    next one, so batches grow with load and a lone message waits for nothing.

    Start it from a task that holds the database context and is not inside a
    transaction: the worker task inherits the caller's Tortoise connection.

    Args:
        bus: Passed to :func:`ingest_many`.
        create_mailboxes: Passed to :func:`ingest_many`; a function is asked per batch
            (test mode's catch-all can be turned off while the server runs).
        max_batch: Most messages per transaction.
        max_batch_bytes: Most raw bytes per transaction (a batch holds at least one message).
        on_delivery_reports: Called after each commit with the stored copies of
            bounces and delay notices (mailbox address, raw bytes), if any.
    """

    def __init__(
        self,
        *,
        bus: EventBus,
        create_mailboxes: bool | Callable[[], bool],
        max_batch: int = 256,
        max_batch_bytes: int = 32 * 1024 * 1024,
        on_delivery_reports: Callable[[list[tuple[str, bytes]]], None] | None = None,
    ) -> None:
        self._bus = bus
        self._create = create_mailboxes
        self._on_reports = on_delivery_reports
        self._max_batch = max_batch
        self._max_bytes = max_batch_bytes
        self._inboxes = InboxCache()
        self._aliases = aliases.AliasCache()
        self._queue: asyncio.Queue[tuple[Incoming, asyncio.Future[IngestResult]] | None] = (
            asyncio.Queue(maxsize=max_batch * 4)
        )
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="ingest-queue")

    async def submit(self, item: Incoming) -> IngestResult:
        """Queue one delivery and wait until it is committed.

        Raises:
            Exception: Whatever storing this message raised (its batch peers are unaffected).
        """
        if self._worker is None or self._worker.done():
            raise RuntimeError("the ingest queue is not running")
        future: asyncio.Future[IngestResult] = asyncio.get_running_loop().create_future()
        if item.fields is None:
            fields = index_message(item.raw)
            item = Incoming(
                item.raw,
                item.recipients,
                item.mail_from,
                item.source,
                item.received_at,
                fields,
                item.expand_aliases,
                item.envelope,
            )
        await self._queue.put((item, future))
        return await future

    async def close(self) -> None:
        """Commit everything queued so far, then stop."""
        if self._worker is not None:
            await self._queue.put(None)
            await self._worker
            self._worker = None

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                return
            batch = [first]
            size = len(first[0].raw)
            while len(batch) < self._max_batch and size < self._max_bytes:
                try:
                    queued = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if queued is None:
                    stopping = True
                    break
                batch.append(queued)
                size += len(queued[0].raw)
            await self._commit(batch)

    async def _commit(self, batch: list[tuple[Incoming, asyncio.Future[IngestResult]]]) -> None:
        items = [item for item, _ in batch]
        create = self._create() if callable(self._create) else self._create
        try:
            results = await ingest_many(
                items,
                bus=self._bus,
                create_mailboxes=create,
                inboxes=self._inboxes,
                alias_cache=self._aliases,
            )
        except Exception as exc:
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            log.warning(
                "group commit of %d messages failed (%s); retrying one by one", len(batch), exc
            )
            for one in batch:
                await self._commit([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result)
        if self._on_reports is not None:
            reports = [
                (stored.mailbox, item.raw)
                for item, result in zip(items, results, strict=True)
                if item.fields is not None and item.fields.is_delivery_report
                for stored in result.stored
            ]
            if reports:
                self._on_reports(reports)


def _settle(future: asyncio.Future[IngestResult], outcome: IngestResult | Exception) -> None:
    if future.done():
        return  # the waiter went away; the message is stored all the same
    if isinstance(outcome, Exception):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


async def _inbox_ids(addresses: set[str]) -> dict[str, int]:
    """The INBOX folder id of each address that has a mailbox.

    Plain parameterised SQL: on the hot path of test mode's new recipients,
    building the ORM's join cost more than running it.
    """
    if not addresses:
        return {}
    db = Folder._meta.db
    sqlite = db.capabilities.dialect == "sqlite"
    marks = ", ".join("?" if sqlite else f"${n + 2}" for n in range(len(addresses)))
    name = "?" if sqlite else "$1"
    # Only placeholders are put into the text; the values go as parameters.
    join = 'FROM "folders" f JOIN "mailboxes" m ON m."id" = f."mailbox_id"'
    where = f'f."name" = {name} AND m."address" IN ({marks})'
    sql = f'SELECT m."address", f."id" {join} WHERE {where}'
    rows = await db.execute_query_dict(sql, [INBOX, *sorted(addresses)])
    return {str(row["address"]): int(row["id"]) for row in rows}


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(value for value in values if value))
