"""Live changes for mail lists: the caller's event feed, each event with the row it concerns.

The feed is ``resolvers/events.py``'s (same scope, same visibility rules);
this module turns each event into a :class:`MailChange` that a list can
apply without fetching again. A new or moved message's row is read from the
store when the change is delivered, through the same ``summary_of`` as the
list queries, so a live row and a fetched row are the same shape; events
themselves (and the SSE stream) are unchanged.
"""

from __future__ import annotations

from typing import Any

from mailcue_server.resolvers.email_list import row_of
from mailcue_server.resolvers.emails import folder_of
from mailcue_server.schema.types.email_list import EmailRow
from mailcue_server.schema.types.events import MailEvent
from mailcue_server.schema.types.mail_changes import MailChange, MailChangeKind
from mailcue_server.store import mail_pages

_WITH_ROW = {MailChangeKind.RECEIVED, MailChangeKind.MOVED, MailChangeKind.COPIED}


async def change_of(event: MailEvent) -> MailChange:
    """The change a list applies for one event the caller may see (from ``watch_events``)."""
    kind = MailChangeKind(event.type)
    data: dict[str, Any] = dict(event.data) if isinstance(event.data, dict) else {}
    folder = folder_of(event.folder) if event.folder else None
    row = None
    if kind in _WITH_ROW and folder is not None and event.uid is not None:
        row = await _row(event.mailbox, folder, event.uid)
    flags = data.get("flags")
    return MailChange(
        id=event.id,
        kind=kind,
        mailbox=event.mailbox,
        at=event.at,
        folder=folder,
        uid=event.uid,
        row=row,
        flags=[str(f) for f in flags] if isinstance(flags, list) else None,
        is_read=bool(data["seen"]) if "seen" in data else None,
        from_folder=folder_of(str(data["from_folder"])) if data.get("from_folder") else None,
        from_uid=int(data["from_uid"]) if data.get("from_uid") is not None else None,
        mailbox_id=str(data["mailbox_id"]) if data.get("mailbox_id") else None,
    )


async def _row(address: str, folder: str, uid: int) -> EmailRow | None:
    message = await mail_pages.row_at(address, folder, uid)
    return row_of(message, address, folder) if message is not None else None
