"""One brake on password guessing for every door: HTTP login, SMTP AUTH, IMAP and POP3.

Failures are counted per (client address, identity): whose password a login
tries, a username or a mailbox address (for a master login ``<address>*<admin>``
the admin). After ``max_attempts`` failures within ``window`` seconds, that
address gets no password checked for that name on any protocol, the right
password included (a different answer would tell a guesser they found it),
until the oldest failure leaves the window. Refused tries are not counted, so
a client that keeps retrying does not extend its own lock, and neither is the
same wrong password twice (a phone polling with an old password does not lock
its owner out). Other addresses are not affected: a guesser cannot lock the
owner out.

Checks for one key run one at a time, so parallel guesses cannot all start
before the first failure is counted; a success clears the key's failures.
IPv6 clients are grouped by /64, which one host usually holds whole.

In-process and per node: a cluster behind a load balancer multiplies the
budget by its node count, which is acceptable for a brute-force brake.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

from mailcue_server.errors import RateLimited

T = TypeVar("T")

LIMITED_MESSAGE = "Too many failed login attempts; try again later"
# The defaults of MAILCUE_LOGIN_MAX_ATTEMPTS and MAILCUE_LOGIN_WINDOW_SECONDS.
DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_WINDOW = 300.0
_MAX_KEYS = 100_000  # past this, forget quiet keys: bounds memory under a spray of names


def client_key(client_ip: str) -> str:
    """The address failures are counted for: the IP, or its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(client_ip.split("%", 1)[0])
    except ValueError:
        return client_ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


class LoginLimiter:
    """Allows ``max_attempts`` failures per key in a sliding ``window`` of seconds."""

    def __init__(
        self, max_attempts: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_attempts = max_attempts
        self.window = window
        self._clock = clock
        # Per key: (time, keyed digest of the wrong password) of each failure in the window.
        self._failures: dict[str, deque[tuple[float, bytes]]] = {}
        self._pepper = secrets.token_bytes(32)  # per process: digests mean nothing elsewhere
        # One password check at a time per key, so parallel guesses cannot all pass the
        # check before the first failure is counted. Value: the lock and how many hold or
        # wait for it (the entry goes when nobody does).
        self._turns: dict[str, tuple[asyncio.Lock, int]] = {}

    @staticmethod
    def key(client_ip: str, identity: str) -> str:
        return f"{client_key(client_ip)}|{identity.strip().lower()}"

    async def attempt(
        self,
        client_ip: str,
        identity: str,
        password: str,
        check: Callable[[], Awaitable[T | None]],
    ) -> T | None:
        """Run one password ``check`` (``None`` means wrong) under the limit.

        ``password`` is the one ``check`` tries: the same wrong password again
        (a mail client retrying a stale one, smtplib trying PLAIN then LOGIN)
        counts once, as it tells a guesser nothing new. Only a keyed digest of
        it is kept, for the window.

        Raises:
            RateLimited: ``identity`` used up its failures from this address;
                ``check`` was not run.
        """
        key = self.key(client_ip, identity)
        self._refuse_if_spent(key)  # at once, without queueing behind other checks
        async with self._turn(key):
            self._refuse_if_spent(key)  # failures may have landed while this one waited
            result = await check()
            if result is not None:
                self._failures.pop(key, None)
                return result
            digest = hmac.digest(self._pepper, password.encode("utf-8", "replace"), "sha256")
            failures = self._recent(key)
            if all(seen != digest[:16] for _, seen in failures):
                failures.append((self._clock(), digest[:16]))
        return None

    def _refuse_if_spent(self, key: str) -> None:
        failures = self._recent(key)
        if len(failures) >= self.max_attempts:
            retry_after = int(failures[0][0] + self.window - self._clock()) + 1
            raise RateLimited(LIMITED_MESSAGE, max(retry_after, 1))

    @contextlib.asynccontextmanager
    async def _turn(self, key: str) -> AsyncIterator[None]:
        lock, users = self._turns.get(key) or (asyncio.Lock(), 0)
        self._turns[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._turns[key]
            if users > 1:
                self._turns[key] = (lock, users - 1)
            else:
                del self._turns[key]

    def _recent(self, key: str) -> deque[tuple[float, bytes]]:
        if key not in self._failures and len(self._failures) >= _MAX_KEYS:
            self._forget_quiet()
        failures = self._failures.setdefault(key, deque())
        horizon = self._clock() - self.window
        while failures and failures[0][0] <= horizon:
            failures.popleft()
        return failures

    def _forget_quiet(self) -> None:
        horizon = self._clock() - self.window
        kept = {k: v for k, v in self._failures.items() if v and v[-1][0] > horizon}
        if len(kept) >= _MAX_KEYS:  # all busy: keep the newest half (dicts keep insertion order)
            kept = dict(list(kept.items())[_MAX_KEYS // 2 :])
        self._failures = kept
