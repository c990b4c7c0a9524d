"""The SMTP worker: inbound SMTP, submission, SMTPS and LMTP on aiosmtpd.

:class:`SmtpServer` binds the listeners on the application's loop and hands
every accepted message to a :class:`Sink` (the message store, in the app).
"""

from mailcue_server.workers.smtp.server import (
    DEFAULT_MAX_MESSAGE_SIZE,
    Listener,
    SmtpServer,
    TlsMode,
)
from mailcue_server.workers.smtp.sink import Delivery, ListenerKind, RecipientVerdict, Sink

__all__ = [
    "DEFAULT_MAX_MESSAGE_SIZE",
    "Delivery",
    "Listener",
    "ListenerKind",
    "RecipientVerdict",
    "Sink",
    "SmtpServer",
    "TlsMode",
]
