"""POP3 server (RFC 1939, with CAPA, STLS and AUTH PLAIN).

``backend`` is the storage interface it needs, ``session`` the per-connection
protocol state machine, and ``server`` the asyncio listener that runs sessions.
"""

from mailcue_server.workers.pop3.backend import Maildrop, MaildropInUse, MessageRef, Pop3Backend
from mailcue_server.workers.pop3.server import Pop3Server

__all__ = ["Maildrop", "MaildropInUse", "MessageRef", "Pop3Backend", "Pop3Server"]
