"""Keeps a running node's live settings in step with what ``PUT /system/settings`` saved.

The node that takes the PUT applies it at once; every other node sharing the
database picks it up at its next sync (a few seconds). Only the live fields
change (``store.settings.LIVE_FIELDS``); the rest waits for a restart.
"""

from __future__ import annotations

from collections.abc import Callable

from mailcue_server.config import Settings
from mailcue_server.store import settings as stored
from mailcue_server.store.credentials import SecretBox


class SettingsSync:
    """Reads the saved settings and installs the live ones that changed.

    Args:
        read: The settings in force on this node.
        apply: Installs new settings on this node.
        box: Opens the saved secrets (the relay password).
    """

    def __init__(
        self, read: Callable[[], Settings], apply: Callable[[Settings], None], box: SecretBox
    ) -> None:
        self._read = read
        self._apply = apply
        self._box = box

    async def run_once(self) -> bool:
        """Read the saved settings once; returns whether this node's changed."""
        running = self._read()
        updated = stored.with_live(running, await stored.saved_system(), self._box)
        if updated is running:
            return False
        self._apply(updated)
        return True
