"""The retention worker: enforces the message and age limits of every mailbox.

Every ``interval`` seconds it reads the server-wide limits from the database
(so a ``PUT /system/settings`` applies from the next run on, on every node
without a restart), then lets :func:`store.retention.enforce` remove, in
short batches, what each mailbox's limits no longer allow; the store
announces each removal as ``email.deleted``. Several nodes sharing a
database may run it at once: a message both pick is deleted, and
announced, once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from mailcue_server.config import Settings
from mailcue_server.errors import NotFound
from mailcue_server.events.bus import EventBus
from mailcue_server.store import retention
from mailcue_server.store import settings as stored_settings
from mailcue_server.workers.periodic import Periodic

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class RetentionWorker:
    """An asyncio task enforcing retention; ``interval <= 0`` turns it off."""

    def __init__(
        self,
        settings: Settings,
        *,
        bus: EventBus,
        interval: float | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.bus = bus
        self.interval = settings.retention_interval if interval is None else interval
        self._clock = clock
        self._loop = Periodic("retention", self.interval, self.run_once)

    @property
    def running(self) -> bool:
        return self._loop.running

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def run_once(self) -> int:
        """Enforce the limits in force now on every mailbox; returns how many messages went."""
        server = await stored_settings.retention()
        now = self._clock()
        removed = 0
        for target in await retention.targets(server):
            try:
                removed += await retention.enforce(
                    target.address, target.limits, bus=self.bus, now=now
                )
            except NotFound:  # the mailbox was deleted meanwhile, with its mail
                continue
            except Exception:  # one mailbox's failure must not spare the others
                log.exception("retention of %s failed", target.address)
        if removed:
            log.info("retention removed %d messages", removed)
        return removed
