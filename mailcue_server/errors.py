"""Domain errors shared by every layer.

These say *what* went wrong in the product's terms and carry no transport
codes: the HTTP/GraphQL edge (``api/errors.py``) and each protocol server in
``workers/`` map them to their own replies.
"""

from __future__ import annotations


class MailcueError(Exception):
    """Base class of every expected, user-facing failure."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Invalid(MailcueError):
    """The input is well-formed but breaks a rule (bad value, bad state)."""


class LimitExceeded(Invalid):
    """The input is over a size or count limit of this server (the message names the limit)."""


class NotFound(MailcueError):
    """The thing does not exist, or the caller may not know it exists."""


class Conflict(MailcueError):
    """The change collides with something that already exists."""


class Unauthenticated(MailcueError):
    """No valid credentials were presented."""


class Forbidden(MailcueError):
    """Valid credentials, but not allowed to do this."""


class MissingScope(Forbidden):
    """An API key lacks the scope an operation needs."""

    def __init__(self, scope: str) -> None:
        # Worded so the official SDK can pick the scope out of the message.
        super().__init__(f"This API key is missing the required '{scope}' permission")
        self.scope = scope


class RateLimited(MailcueError):
    """Too many attempts; try again after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamFailed(MailcueError):
    """A server we depend on (SMTP relay, keyserver) was unreachable, failed or refused.

    ``timed_out`` tells a silent upstream (a gateway timeout) from a failing one.
    """

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class SubmissionFailed(UpstreamFailed):
    """The mail server we hand a message to was unreachable or refused it (not the input)."""


class ConfigError(MailcueError):
    """A setting is missing or has a bad value; start-up stops with this line."""


class ListenerUnavailable(MailcueError):
    """A listener could not take its address: in use, privileged, or not this machine's."""

    def __init__(self, listener: str, host: str, port: int, error: OSError) -> None:
        super().__init__(f"{listener} {host}:{port}: {error.strerror or error}")
        self.listener = listener
        self.host = host
        self.port = port
        self.error = error
