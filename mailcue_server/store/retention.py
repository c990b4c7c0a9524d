"""Retention: removing the mail a mailbox's age and count limits no longer allow.

A mailbox follows the server-wide limits (:func:`store.settings.retention`)
unless it sets its own (``Mailbox.retention_max_messages`` and
``retention_max_age_days``: None follows the server, 0 is no limit there).
Both limits count the whole mailbox, every folder together: ``max_messages``
is the same number as the mailbox's ``email_count``.

Age is measured from the IMAP internal date, which is when the message was
received: SMTP/LMTP delivery sets it on arrival, and IMAP APPEND or API
inject take the date the client gives (RFC 9051 section 6.3.12), as a
migrated or fixture message should keep its age.

Removal goes through :func:`store.messages.delete`, the path REST delete
uses, in batches of :data:`BATCH` messages, each its own short transaction:
folder counters, UIDs, the search index and IMAP EXPUNGE follow as for any
delete, and every removed message is announced as ``email.deleted`` after
its batch commits. A huge purge never holds one long transaction, and mail
arriving meanwhile is interleaved between batches.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from mailcue_server.errors import NotFound
from mailcue_server.events.bus import EventBus
from mailcue_server.store import messages
from mailcue_server.store.locks import exclusive
from mailcue_server.store.mail_models import Folder, Mailbox, Message
from mailcue_server.store.mailboxes import get_mailbox
from mailcue_server.store.settings import Retention

log = logging.getLogger(__name__)

BATCH = 500
"""Messages removed per transaction."""


@dataclass(frozen=True, slots=True)
class Target:
    """A mailbox with mail and at least one limit in force."""

    address: str
    limits: Retention


def effective(own: int | None, server: int | None) -> int | None:
    """The limit in force: the mailbox's own (0 is none), else the server's (None is none)."""
    value = server if own is None else own
    return value or None


def limits_of(mailbox: Mailbox, server: Retention) -> Retention:
    """The limits ``mailbox`` is held to, given the server-wide ones."""
    return Retention(
        max_messages=effective(mailbox.retention_max_messages, server.max_messages),
        max_age_days=effective(mailbox.retention_max_age_days, server.max_age_days),
    )


async def set_limits(
    address: str, *, max_messages: int | None, max_age_days: int | None
) -> Mailbox:
    """Save a mailbox's own limits (None follows the server, 0 is no limit); checked by the caller.

    Raises:
        NotFound: No such mailbox.
    """
    mailbox = await get_mailbox(address)
    mailbox.retention_max_messages = max_messages
    mailbox.retention_max_age_days = max_age_days
    await mailbox.save(update_fields=["retention_max_messages", "retention_max_age_days"])
    return mailbox


async def targets(server: Retention) -> list[Target]:
    """Every mailbox that holds mail and has a limit in force, by address.

    The counts come from the folder counters, so mailboxes under their
    message limit and without an age limit cost no message query.
    """
    totals: dict[str, int] = {}
    for row in await Folder.all().values("mailbox_id", "message_count"):
        key = str(row["mailbox_id"])
        totals[key] = totals.get(key, 0) + int(row["message_count"])
    columns = ("id", "address", "retention_max_messages", "retention_max_age_days")
    found: list[Target] = []
    for row in await Mailbox.all().order_by("address").values(*columns):
        count = totals.get(str(row["id"]), 0)
        limits = Retention(
            max_messages=effective(row["retention_max_messages"], server.max_messages),
            max_age_days=effective(row["retention_max_age_days"], server.max_age_days),
        )
        over = limits.max_messages is not None and count > limits.max_messages
        if count and (over or limits.max_age_days is not None):
            found.append(Target(str(row["address"]), limits))
    return found


async def enforce(
    address: str, limits: Retention, *, bus: EventBus, now: datetime, batch: int = BATCH
) -> int:
    """Remove what ``limits`` no longer allow in one mailbox: too old first, then the oldest
    beyond the message limit.

    Returns:
        How many messages were removed (0 when another worker is enforcing the mailbox).

    Raises:
        NotFound: No such mailbox (a folder deleted meanwhile only ends this pass early).
    """
    removed = 0
    # One worker per mailbox: two that each count the excess and then delete remove too much.
    async with exclusive(f"retention:{address}") as ours:
        if not ours:
            return 0
        if limits.max_age_days is not None:
            cutoff = now - timedelta(days=limits.max_age_days)
            removed += await purge_older_than(address, cutoff, bus=bus, batch=batch)
        if limits.max_messages is not None:
            removed += await trim_to(address, limits.max_messages, bus=bus, batch=batch)
    return removed


async def purge_older_than(
    address: str, cutoff: datetime, *, bus: EventBus, batch: int = BATCH
) -> int:
    """Remove every message of the mailbox received before ``cutoff``; returns how many."""
    names = await _folder_names(address)
    cutoff = cutoff.astimezone(UTC)  # SQLite compares the stored UTC text
    removed = 0
    while True:
        # No ORDER BY: all of them go, and the (folder, internal_date) index finds them.
        rows = await (
            Message.filter(folder_id__in=list(names), internal_date__lt=cutoff)
            .limit(batch)
            .values("folder_id", "uid")
        )
        done = await _delete(address, names, rows, bus=bus)
        removed += done
        if len(rows) < batch or not done:
            return removed


async def trim_to(address: str, max_messages: int, *, bus: EventBus, batch: int = BATCH) -> int:
    """Remove the oldest messages of the mailbox until at most ``max_messages`` remain."""
    names = await _folder_names(address)
    removed = 0
    while (excess := await _count(names) - max_messages) > 0:
        rows = await (
            Message.filter(folder_id__in=list(names))
            .order_by("internal_date", "id")
            .limit(min(excess, batch))
            .values("folder_id", "uid")
        )
        done = await _delete(address, names, rows, bus=bus)
        removed += done
        if not done:  # nothing left to take, or a concurrent change: the next run goes on
            break
    return removed


async def _folder_names(address: str) -> dict[int, str]:
    mailbox = await get_mailbox(address)
    rows = await Folder.filter(mailbox_id=mailbox.id).values("id", "name")
    return {int(row["id"]): str(row["name"]) for row in rows}


async def _count(names: dict[int, str]) -> int:
    """Messages in these folders, from the counters every delete keeps in step."""
    rows = await Folder.filter(id__in=list(names)).values("message_count")
    return sum(int(row["message_count"]) for row in rows)


async def _delete(
    address: str, names: dict[int, str], rows: Sequence[dict[str, Any]], *, bus: EventBus
) -> int:
    """Delete ``rows`` folder by folder through the API's delete path; returns how many went."""
    by_folder: dict[int, list[int]] = {}
    for row in rows:
        by_folder.setdefault(int(row["folder_id"]), []).append(int(row["uid"]))
    removed = 0
    for folder_id, uids in sorted(by_folder.items()):
        try:
            removed += len(await messages.delete(address, names[folder_id], uids, bus=bus))
        except NotFound:  # the folder was deleted meanwhile, with its mail
            log.info("retention: folder %s of %s vanished", names[folder_id], address)
    return removed
