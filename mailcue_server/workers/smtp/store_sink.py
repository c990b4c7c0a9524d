"""The SMTP sink over the message store: recipient policy, credentials and delivery.

Test mode accepts any syntactically valid recipient (a mailbox is made on
first mail); production mode accepts only existing mailboxes. Delivery goes
through the group-commit :class:`~mailcue_server.store.ingest.IngestQueue`, so
``deliver`` returns only after the message's transaction has committed.
"""

from __future__ import annotations

import hmac

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
        api_credential: The username and password the HTTP API submits with
            (``POST /emails/send``); made per process, never stored.
    """

    def __init__(
        self,
        queue: IngestQueue,
        *,
        accept_any_recipient: bool,
        api_credential: tuple[str, str] | None = None,
    ) -> None:
        self._queue = queue
        self._catch_all = accept_any_recipient
        self._api_credential = api_credential

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
        if self._api_credential is not None and username == self._api_credential[0]:
            expected = self._api_credential[1].encode()
            return username if hmac.compare_digest(password.encode(), expected) else None
        if "@" in username:
            mailbox = await mailboxes.check_password(username, password)
            if mailbox is not None:
                return mailbox.address
        user = await users.check_password(username, password)
        return user.username if user is not None else None
