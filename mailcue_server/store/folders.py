"""Folder management beyond creation: listing with counters, delete, rename, subscribe.

``store/mailboxes.py`` creates folders; this module owns what IMAP's DELETE,
RENAME, SUBSCRIBE and UNSUBSCRIBE (RFC 3501 sections 6.3.4 to 6.3.7) and LIST
with special-use attributes (RFC 6154) need. Folder names form a hierarchy
with ``/`` as the delimiter (:data:`DELIMITER`). Every write commits, then
publishes ``folder.changed`` (STYLE rule 2). Deleting a folder removes its
mail through :func:`store.messages.delete`, so subscribers hear about every
message that goes.

INBOX and the special-use folders (Sent, Drafts, Trash, Junk) can be neither
deleted nor renamed: mail delivery and the APIs rely on them existing.
"""

from __future__ import annotations

from tortoise.exceptions import IntegrityError

from mailcue_server.errors import Conflict, Invalid, NotFound
from mailcue_server.events.bus import Event, EventBus, EventType, publish_quietly
from mailcue_server.store import changes, messages, uids
from mailcue_server.store.changes import FolderState
from mailcue_server.store.mail_models import INBOX, Folder
from mailcue_server.store.mailboxes import (
    MAX_FOLDER_NAME,
    folder_name,
    get_folder,
    list_folders,
    normalise_address,
)

DELIMITER = "/"
"""The hierarchy delimiter of folder names (the IMAP LIST delimiter)."""

_DELETE_ATTEMPTS = 5


async def folder_states(address: str) -> list[FolderState]:
    """Every folder of a mailbox with its special use and counters, INBOX first.

    Raises:
        NotFound: No such mailbox.
    """
    return [changes.state_of(folder) for folder in await list_folders(address)]


async def subscribed_names(address: str) -> list[str]:
    """The names of the subscribed folders (IMAP LSUB), INBOX first."""
    return [folder.name for folder in await list_folders(address) if folder.subscribed]


async def set_subscribed(address: str, name: str, subscribed: bool, *, bus: EventBus) -> None:
    """Subscribe to or unsubscribe from a folder (RFC 3501 sections 6.3.6 and 6.3.7).

    Raises:
        NotFound: No such mailbox or folder.
    """
    folder = await get_folder(address, name)
    async with uids.write_transaction():
        await Folder.filter(id=folder.id).update(subscribed=subscribed)
    change = "subscribed" if subscribed else "unsubscribed"
    await _publish(bus, address, [(folder.name, {"change": change})])


async def delete_folder(address: str, name: str, *, bus: EventBus) -> None:
    """Delete a folder and its messages (RFC 3501 section 6.3.4).

    Folders below it in the hierarchy stay; LIST then shows the deleted name
    as ``\\Noselect`` while it has children.

    Raises:
        NotFound: No such mailbox or folder.
        Invalid: The folder is INBOX or a special-use folder.
    """
    folder = await get_folder(address, name)
    _check_removable(folder, "deleted")
    for _ in range(_DELETE_ATTEMPTS):
        present = await changes.uids(folder.id)
        if present:
            await messages.delete(address, folder.name, present, bus=bus)
        if await _delete_if_empty(folder.id):
            await _publish(bus, address, [(folder.name, {"change": "deleted"})])
            return
    raise Conflict(f"Folder '{folder.name}' keeps receiving mail; try again")


async def _delete_if_empty(folder_id: int) -> bool:
    """Drop the folder row unless mail arrived since its messages were deleted."""
    async with uids.write_transaction():
        locked = await uids.lock_folders([folder_id])
        if not locked:
            raise NotFound("The folder was deleted meanwhile")
        if locked[folder_id].folder.message_count:
            return False
        await Folder.filter(id=folder_id).delete()
    return True


async def rename_folder(address: str, old: str, new: str, *, bus: EventBus) -> None:
    """Rename a folder and every folder below it (RFC 3501 section 6.3.5).

    Each folder keeps its UIDVALIDITY: values are never reused within a
    mailbox, so the new name still gets one it never had.

    Raises:
        NotFound: No such mailbox or folder.
        Invalid: The folder is INBOX or special-use, or the new name is not valid.
        Conflict: A folder with one of the new names exists.
    """
    source = await get_folder(address, old)
    _check_removable(source, "renamed")
    target = folder_name(new.strip())
    if not target or len(target) > MAX_FOLDER_NAME:
        raise Invalid(f"Folder names are 1 to {MAX_FOLDER_NAME} characters")
    if target == source.name:
        return
    prefix = source.name + DELIMITER
    if target.startswith(prefix):
        raise Invalid("A folder cannot be moved below itself")
    if target == INBOX:
        raise Conflict("Folder 'INBOX' already exists")
    renames: list[tuple[str, str]] = []
    try:
        async with uids.write_transaction():
            rows = await Folder.filter(mailbox_id=source.mailbox_id).select_for_update()
            family = [row for row in rows if row.id == source.id or row.name.startswith(prefix)]
            taken = {row.name for row in rows} - {row.name for row in family}
            for row in sorted(family, key=lambda row: row.name):
                renamed = target + row.name[len(source.name) :]
                if renamed in taken or len(renamed) > MAX_FOLDER_NAME:
                    raise Conflict(f"Folder '{renamed}' already exists")
                await Folder.filter(id=row.id).update(name=renamed)
                renames.append((row.name, renamed))
    except IntegrityError as exc:
        raise Conflict(f"Folder '{target}' already exists") from exc
    await _publish(
        bus, address, [(after, {"change": "renamed", "from": before}) for before, after in renames]
    )


def _check_removable(folder: Folder, verb: str) -> None:
    if folder.name == INBOX:
        raise Invalid(f"INBOX cannot be {verb}")
    if folder.special_use:
        raise Invalid(f"'{folder.name}' is the {folder.special_use} folder and cannot be {verb}")


async def _publish(bus: EventBus, address: str, changed: list[tuple[str, dict[str, str]]]) -> None:
    mailbox = normalise_address(address)
    await publish_quietly(
        bus, [Event(EventType.FOLDER_CHANGED, mailbox, name, data=data) for name, data in changed]
    )
