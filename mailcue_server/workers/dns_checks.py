"""The periodic DNS check of managed domains, so drift shows without anyone asking.

Every ``poll`` seconds the worker checks the active domains whose last check
is older than ``interval`` (or that were never checked) with the same store
function as ``POST /domains/{name}/verify-dns``. Several nodes sharing a
database may each check a domain; the last result wins, which is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from mailcue_server.config import Settings
from mailcue_server.store import domains
from mailcue_server.workers.periodic import Periodic

log = logging.getLogger(__name__)

MAX_POLL_SECONDS = 60.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


class DnsCheckWorker:
    """An asyncio task re-verifying managed domains; ``interval <= 0`` turns it off.

    The host name and resolver are read from ``settings`` at every check, so
    a change made while the server runs is used from the next check on.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        interval: float | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.interval = settings.dns_check_interval if interval is None else interval
        self.poll = min(self.interval, MAX_POLL_SECONDS)
        self._clock = clock
        self._loop = Periodic("dns-checks", self.poll, self.run_once)

    def start(self) -> None:
        if self.interval > 0:
            self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()

    async def run_once(self) -> int:
        """Check every domain that is due; returns how many were checked."""
        now = self._clock()
        due = await domains.due_for_check(now - timedelta(seconds=self.interval))
        for domain in due:
            try:
                await domains.verify_dns(
                    domain,
                    mail_host=self.settings.effective_hostname,
                    nameserver=self.settings.dns_nameserver,
                    now=now,
                )
            except Exception:  # one broken domain must not stop the others
                log.exception("DNS check of %s failed", domain.name)
        return len(due)
