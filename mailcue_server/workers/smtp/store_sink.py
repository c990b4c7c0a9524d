"""The SMTP sink over the message store: recipient policy, credentials and delivery.

Test mode accepts any syntactically valid recipient (a mailbox is made on
first mail); production mode accepts only existing mailboxes. Delivery goes
through the group-commit :class:`~mailcue_server.store.ingest.IngestQueue`, so
``deliver`` returns only after the message's transaction has committed.
"""

from __future__ import annotations

from mailcue_server.errors import Invalid
from mailcue_server.mail.addresses import canonical_address
from mailcue_server.store import mailboxes, users
from mailcue_server.store.ingest import Incoming, IngestQueue
from mailcue_server.workers.smtp.sink import Delivery, RecipientVerdict


class StoreSink:
    """Implements :class:`~mailcue_server.workers.smtp.sink.Sink` on our store.

    Args:
        queue: The running ingest queue that commits deliveries.
        accept_any_recipient: Test mode's catch-all.
    """

    def __init__(self, queue: IngestQueue, *, accept_any_recipient: bool) -> None:
        self._queue = queue
        self._catch_all = accept_any_recipient

    async def check_recipient(
        self, address: str, *, authenticated: str | None
    ) -> RecipientVerdict:
        try:
            canonical = canonical_address(address)
        except Invalid:
            return RecipientVerdict.UNKNOWN_USER
        if self._catch_all or await mailboxes.find_mailbox(canonical) is not None:
            return RecipientVerdict.ACCEPT
        return RecipientVerdict.UNKNOWN_USER

    async def deliver(self, envelope: Delivery) -> None:
        await self._queue.submit(
            Incoming(
                raw=envelope.raw,
                recipients=envelope.rcpt_tos,
                mail_from=envelope.mail_from,
                source=str(envelope.listener),
            )
        )

    async def authenticate(self, username: str, password: str) -> str | None:
        """A mailbox address and its password, or a user account's username and password."""
        if "@" in username:
            mailbox = await mailboxes.check_password(username, password)
            if mailbox is not None:
                return mailbox.address
        user = await users.check_password(username, password)
        return user.username if user is not None else None
