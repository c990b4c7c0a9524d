"""The pymap configuration of one listener, and the state its sessions share.

pymap reads capabilities, authentication rules, limits and the greeting from
an :class:`~pymap.config.IMAPConfig`. Ours is built from explicit arguments
(no command line, no environment, no DNS lookup for the greeting) and also
carries what every session of the listener shares: the event bus, and per
folder the pymap ``SelectedSet`` and the highest UID already announced as
``\\Recent`` (RFC 3501 section 2.3.2).
"""

from __future__ import annotations

import ssl
from argparse import Namespace
from collections.abc import Mapping, Sequence

from proxyprotocol.version import ProxyProtocolVersion
from pymap.concurrent import Subsystem
from pymap.config import BackendCapability, IMAPConfig
from pymap.parsing import Params
from pymap.parsing.commands import Commands
from pymap.selected import SelectedSet
from pysasl import SASLAuth
from pysasl.hashing import Cleartext

from mailcue_server import __version__
from mailcue_server.events.bus import EventBus
from mailcue_server.workers.imap.extensions import register_commands
from mailcue_server.workers.limits import Limit, current

DEFAULT_MAX_MESSAGE_SIZE = 50 * 1024 * 1024
IDLE_RECHECK_SECONDS = 30.0
"""An IDLE session re-reads its folder this often even when the bus stays silent."""


class ImapConfig(IMAPConfig):
    """Settings of one IMAP listener.

    Args:
        bus: Where store events come from (IDLE wakes on them).
        hostname: Shown in the greeting.
        ssl_context: Server context for STARTTLS (plain listener) or the
            implicit-TLS handshake; ``None`` when the listener has no TLS.
        starttls: Offer STARTTLS (RFC 3501 section 6.2.1).
        implicit_tls: The connection is TLS from the first byte (RFC 8314).
        allow_plaintext_auth: Accept LOGIN and AUTHENTICATE before TLS (test mode).
        max_message_size: APPENDLIMIT (RFC 7889): the largest message APPEND takes.
        idle_recheck: Seconds between folder re-reads during IDLE.
    """

    def __init__(
        self,
        *,
        bus: EventBus,
        hostname: str,
        ssl_context: ssl.SSLContext | None,
        starttls: bool,
        implicit_tls: bool,
        allow_plaintext_auth: bool,
        max_message_size: Limit = DEFAULT_MAX_MESSAGE_SIZE,
        idle_recheck: float = IDLE_RECHECK_SECONDS,
    ) -> None:
        super().__init__(
            Namespace(),
            host=None,
            port=0,
            ssl_context=ssl_context or ssl.create_default_context(ssl.Purpose.CLIENT_AUTH),
            tls_enabled=starttls and ssl_context is not None,
            hash_context=Cleartext(),
            cpu_subsystem=Subsystem.for_asyncio(),
            proxy_protocol=ProxyProtocolVersion.get(None),
            invalid_user_sleep=0.0,
            reject_dnsbl=False,
            max_append_len=current(max_message_size),
        )
        self.bus = bus
        self.hostname = hostname
        self.implicit_tls = implicit_tls
        self.allow_plaintext_auth = allow_plaintext_auth
        self._size_limit = max_message_size
        self.idle_recheck = idle_recheck
        self.recent_marks: dict[int, int] = {}
        self._selected_sets: dict[int, SelectedSet] = {}
        self._kept_subscriptions: dict[str, set[str]] = {}

    @property
    def max_message_size(self) -> int:
        """The APPEND limit in force now (it follows ``PUT /system/settings``)."""
        return current(self._size_limit)

    @property
    def parsing_params(self) -> Params:
        return Params(max_append_len=self.max_message_size)

    def selected_set(self, folder_id: int) -> SelectedSet:
        """The sessions that have this folder selected (pymap notifies them of changes)."""
        return self._selected_sets.setdefault(folder_id, SelectedSet())

    def kept_subscriptions(self, address: str) -> set[str]:
        """Subscribed names of the mailbox's deleted folders (RFC 3501 section 6.3.9: a
        server must not drop a subscription on its own). The store keeps a subscription
        on the folder row, so these live here, for the listener's lifetime.
        """
        return self._kept_subscriptions.setdefault(address, set())

    @property
    def backend_capability(self) -> BackendCapability:
        return BackendCapability(
            idle=True,
            object_id=False,
            multi_append=True,
            custom=[b"NAMESPACE", b"UNSELECT", b"ENABLE", b"SPECIAL-USE"],
        )

    @property
    def login_capability(self) -> Sequence[bytes]:
        # pymap also announces BINARY (RFC 3516), which we do not promise.
        return [
            b"UIDPLUS",
            b"MOVE",
            b"CHILDREN",
            b"APPENDLIMIT=%d" % self.max_message_size,
            *self.backend_capability,
        ]

    @property
    def initial_auth(self) -> SASLAuth:
        """PLAIN and LOGIN from the start on TLS or in test mode; otherwise after STARTTLS."""
        if self.implicit_tls or self.allow_plaintext_auth:
            return self.tls_auth
        return SASLAuth([])

    @property
    def greeting(self) -> bytes:
        return b"%s MailCue IMAP4rev1 server ready" % self.hostname.encode("ascii", "replace")

    @property
    def commands(self) -> Commands:
        return register_commands(Commands())

    @property
    def id_response(self) -> Mapping[bytes, bytes]:
        return {b"name": b"MailCue", b"version": __version__.encode("ascii", "replace")}
