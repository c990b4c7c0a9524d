"""How many connections each listener holds, per client address and in all.

Every listener (SMTP, submission, SMTPS, LMTP, IMAP, IMAPS, POP3, POP3S and
HTTP) asks its :class:`ConnectionLimiter` before it serves a new connection
and gives the :class:`Ticket` back when the connection closes. The limiters of
one process share a :class:`ConnectionBudget` sized from the open-file limit,
so the listeners together never take the descriptors that the database, Redis
and outbound mail need: one client opening thousands of sockets gets refused
instead of making every listener fail to accept.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import resource
import time
from collections import Counter
from dataclasses import dataclass

log = logging.getLogger(__name__)

DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 200
# Connections one listener may be busy refusing at once (a TLS handshake to say no over,
# or a moment of lingering so the client reads the refusal); more are dropped silently.
REFUSALS_IN_FLIGHT = 16
# Descriptors kept back from client connections: database and Redis pools, outbound SMTP,
# DNS, MTA-STS and keyserver requests, refusals in flight, certificates and logs.
MIN_RESERVED_FILES = 256
# Seconds between two warnings about refused connections of one listener (a flood would
# otherwise write a log line per connection).
_WARN_EVERY = 60.0
# What to aim for when the hard limit says "unlimited" (macOS), which setrlimit refuses.
_UNLIMITED_FILES = 65536


class Ticket:
    """One admitted connection; :meth:`release` when it closes (twice does no harm)."""

    __slots__ = ("_client", "_limiter")

    def __init__(self, limiter: ConnectionLimiter, client: str | None) -> None:
        self._limiter: ConnectionLimiter | None = limiter
        self._client = client

    def release(self) -> None:
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter._give_back(self._client)


class ConnectionBudget:
    """The connections all listeners of one process may hold together.

    Args:
        capacity: At most this many at once (see :func:`budget_for`).
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = max(1, capacity)
        self.open = 0


class ConnectionLimiter:
    """Admits connections to one listener within its caps.

    Args:
        name: The listener, for logs.
        total: Connections the listener holds at most.
        per_client: Connections one client address holds at most on this listener.
        budget: The process-wide budget this listener draws from, if any.
    """

    def __init__(
        self,
        name: str,
        *,
        total: int = DEFAULT_MAX_CONNECTIONS,
        per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
        budget: ConnectionBudget | None = None,
    ) -> None:
        self.name = name
        self.total = max(1, total)
        self.per_client = max(1, per_client)
        self._budget = budget
        self._clients: Counter[str] = Counter()
        self._open = 0
        self._refusing = 0
        self._refused = 0
        self._warned_at = -_WARN_EVERY

    @property
    def open(self) -> int:
        """Connections admitted and not yet released."""
        return self._open

    def admit(self, client: str) -> Ticket | None:
        """A ticket for a new connection from ``client``, or None when a cap is reached."""
        budget = self._budget
        if self._clients[client] >= self.per_client:
            cap = f"{self.per_client} from this client"
        elif self._open >= self.total:
            cap = f"{self.total} on this listener"
        elif budget is not None and budget.open >= budget.capacity:
            cap = f"{budget.capacity} in all, from the open-file limit"
        else:
            cap = ""
        if cap:
            self._note_refusal(client, cap)
            return None
        self._open += 1
        self._clients[client] += 1
        if budget is not None:
            budget.open += 1
        return Ticket(self, client)

    def refusal(self) -> Ticket | None:
        """A slot for saying no to a connection, or None when enough refusals are in flight."""
        if self._refusing >= REFUSALS_IN_FLIGHT:
            return None
        self._refusing += 1
        return Ticket(self, None)

    def _note_refusal(self, client: str, cap: str) -> None:
        self._refused += 1
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY:
            log.warning(
                "%s: too many connections (%s), refusing %s; %d refused since the last warning",
                self.name,
                cap,
                client,
                self._refused,
            )
            self._warned_at, self._refused = now, 0

    def _give_back(self, client: str | None) -> None:
        if client is None:
            self._refusing -= 1
            return
        self._open -= 1
        left = self._clients[client] - 1
        if left:
            self._clients[client] = left
        else:
            del self._clients[client]
        if self._budget is not None:
            self._budget.open -= 1


@dataclass(frozen=True, slots=True)
class ConnectionCaps:
    """The caps every listener of a server gets; each listener counts on its own.

    Attributes:
        total: Connections one listener holds at most.
        per_client: Connections one client address holds at most on one listener.
        budget: Shared by all listeners of the process (from the open-file limit).
    """

    total: int = DEFAULT_MAX_CONNECTIONS
    per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT
    budget: ConnectionBudget | None = None

    def limiter(self, name: str) -> ConnectionLimiter:
        total = self.total if self.budget is None else min(self.total, self.budget.capacity)
        return ConnectionLimiter(name, total=total, per_client=self.per_client, budget=self.budget)


def client_of(peername: object) -> str:
    """The address a client is counted under: its IP, or its /64 for IPv6.

    One IPv6 host usually has a whole /64 to pick source addresses from, so
    counting single addresses would not cap it. IPv4-mapped IPv6 addresses
    (a dual-stack listener) count as the IPv4 address.
    """
    host = peername[0] if isinstance(peername, tuple) and peername else None
    if not isinstance(host, str):
        return "-"
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def raise_open_file_limit() -> int:
    """Raise the soft open-file limit to the hard one; return the soft limit now in force.

    Raising is cheap and undoes a login shell's default of 1,024, which a busy
    server outgrows; a limit that cannot be raised is kept as it is.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _UNLIMITED_FILES
    target = _UNLIMITED_FILES if hard == resource.RLIM_INFINITY else hard
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    return soft


def budget_for(open_files: int) -> int:
    """Client connections a process with ``open_files`` descriptors may hold.

    A quarter (at least :data:`MIN_RESERVED_FILES`) stays free for everything
    else, but client connections always get at least half.
    """
    reserved = max(MIN_RESERVED_FILES, open_files // 4)
    return max(open_files - reserved, open_files // 2)
