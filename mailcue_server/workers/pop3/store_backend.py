"""The POP3 backend over the message store: mailbox credentials, INBOX maildrops."""

from __future__ import annotations

from collections.abc import Sequence

from mailcue_server.events.bus import EventBus
from mailcue_server.store import mailboxes, maildrops
from mailcue_server.store.login_limiter import DEFAULT_MAX_ATTEMPTS, DEFAULT_WINDOW, LoginLimiter
from mailcue_server.workers.pop3.backend import MaildropInUse, MessageRef


class StoreMaildrop:
    """One locked INBOX; UIDL values are the IMAP UIDs (stable, unique in the folder)."""

    def __init__(self, address: str, bus: EventBus, locks: maildrops.Locks) -> None:
        self._address = address
        self._bus = bus
        self._locks = locks

    async def list_messages(self) -> Sequence[MessageRef]:
        return [
            MessageRef(uid=str(uid), size=size)
            for uid, size in await maildrops.inbox_sizes(self._address)
        ]

    async def read(self, uid: str) -> bytes:
        return await maildrops.read(self._address, int(uid))

    async def delete(self, uids: Sequence[str]) -> None:
        await maildrops.remove(self._address, [int(u) for u in uids], bus=self._bus)

    async def release(self) -> None:
        self._locks.release(self._address)


class StorePop3Backend:
    """Implements :class:`~mailcue_server.workers.pop3.backend.Pop3Backend` on our store."""

    def __init__(self, bus: EventBus, limiter: LoginLimiter | None = None) -> None:
        self._bus = bus
        self._locks = maildrops.Locks()
        # The limiter HTTP, SMTP and IMAP share; one of its own when none is given.
        self._limiter = limiter or LoginLimiter(DEFAULT_MAX_ATTEMPTS, DEFAULT_WINDOW)

    async def authenticate(
        self, username: str, password: str, *, client_ip: str
    ) -> StoreMaildrop | None:
        mailbox = await mailboxes.check_login(
            username, password, limiter=self._limiter, client_ip=client_ip
        )
        if mailbox is None:
            return None
        if not self._locks.acquire(mailbox.address):
            raise MaildropInUse(mailbox.address)
        return StoreMaildrop(mailbox.address, self._bus, self._locks)
