"""Failed-login throttling per client address and username.

In-process and per node: a cluster behind a load balancer multiplies the
budget by its node count, which is acceptable for a brute-force brake.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from mailcue_server.errors import RateLimited


class LoginLimiter:
    """Allows ``max_attempts`` failures per key in a sliding ``window`` of seconds."""

    def __init__(
        self, max_attempts: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.max_attempts = max_attempts
        self.window = window
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    @staticmethod
    def key(client_ip: str, username: str) -> str:
        return f"{client_ip}|{username.lower()}"

    def check(self, key: str) -> None:
        """Raise :class:`RateLimited` if ``key`` has used up its failures."""
        failures = self._recent(key)
        if len(failures) >= self.max_attempts:
            retry_after = int(failures[0] + self.window - self._clock()) + 1
            raise RateLimited("Too many failed login attempts; try again later", retry_after)

    def fail(self, key: str) -> None:
        self._recent(key).append(self._clock())

    def succeed(self, key: str) -> None:
        self._failures.pop(key, None)

    def _recent(self, key: str) -> deque[float]:
        failures = self._failures.setdefault(key, deque())
        horizon = self._clock() - self.window
        while failures and failures[0] <= horizon:
            failures.popleft()
        if len(self._failures) > 100_000:  # bound memory under a spray of usernames
            self._failures = {k: v for k, v in self._failures.items() if v}
        return failures
