"""IMAP4rev1 server (RFC 3501) over the mail store, built on pymap.

``server`` is the listener and ``connection`` one client's byte stream;
``extensions`` holds the commands and state rules pymap lacks (and the only
use of its private API); ``login`` checks credentials and ``backend`` is the
per-connection session; ``mailboxes`` maps folders onto the store and
``selected`` keeps a session's view of its folder (and the FLAGS it was
told); ``message``, ``fetch``, ``fetch_items``, ``search`` and
``structure`` answer FETCH and SEARCH from the exact stored bytes, read
through the one MIME tree of :mod:`mailcue_server.mail.tree`.
"""

from mailcue_server.workers.imap.server import ImapServer

__all__ = ["ImapServer"]
