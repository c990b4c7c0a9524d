"""The request context every resolver receives, and the principal it checks.

One :class:`Principal` is built per request from a JWT or an API key, for REST,
GraphQL and SSE alike. Every scope, admin and mailbox check is a method here,
so each rule exists once.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol
from uuid import UUID

from mailcue_server.config import Settings
from mailcue_server.errors import Forbidden, MissingScope, Unauthenticated
from mailcue_server.events.bus import EventBus
from mailcue_server.resolvers.scopes import ACCOUNT_SECURITY, BY_VALUE, FULL_ACCESS
from mailcue_server.resolvers.tokens import TokenService
from mailcue_server.store.credentials import SecretBox
from mailcue_server.store.login_limiter import LoginLimiter


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Principal:
    """Who is calling and what they may do.

    ``scopes`` is ``None`` for a logged-in user (full access of that user);
    an API key carries its scopes and optional mailbox allow-list.
    """

    user_id: UUID
    username: str
    is_admin: bool
    session_id: UUID | None = None
    api_key_id: UUID | None = None
    scopes: frozenset[str] | None = None
    allowed_mailboxes: frozenset[str] | None = None

    @property
    def via_api_key(self) -> bool:
        return self.api_key_id is not None

    def has_scope(self, scope: str) -> bool:
        """A session holds every scope; a key its own, where ``*`` covers all but explicit ones."""
        definition = BY_VALUE[scope]
        if definition.admin_only and not self.is_admin:
            return False
        if self.scopes is None or scope in self.scopes:
            return True
        return FULL_ACCESS in self.scopes and not definition.explicit

    def require_scope(self, scope: str) -> None:
        """Raise unless this principal may use ``scope``.

        Raises:
            Forbidden: an admin-only scope for a regular user.
            MissingScope: an API key without ``scope``.
        """
        if BY_VALUE[scope].admin_only and not self.is_admin:
            raise Forbidden("Administrator privileges required")
        if not self.has_scope(scope):
            raise MissingScope(scope)

    def require_account_security(self) -> None:
        """Changing how the account signs in: a session token, or a key granted
        ``account:security`` by name (never a data scope, never ``*`` alone).

        Raises:
            MissingScope: an API key without that scope.
        """
        self.require_scope(ACCOUNT_SECURITY)

    def require_admin(self, scope: str) -> None:
        """Admin-only operations also need their scope when called with a key."""
        if not self.is_admin:
            raise Forbidden("Administrator privileges required")
        self.require_scope(scope)

    def may_use_mailbox(self, address: str) -> bool:
        """The API key allow-list check (ownership is checked by the store query)."""
        return self.allowed_mailboxes is None or address.lower() in self.allowed_mailboxes


@dataclass(frozen=True)
class SmtpTarget:
    """Where the API hands mail it sends: our own submission listener.

    ``username``/``password`` is a per-process credential the submission
    listener accepts from the API only (the resolver has already checked who
    may send from which address). ``tls_context`` makes a client context that
    trusts the certificate the listener serves (the local CA or an uploaded
    chain); ``tls_hostname`` is the name that certificate covers.
    """

    host: str
    port: int
    username: str
    password: str
    tls_context: Callable[[], ssl.SSLContext] | None = None
    tls_hostname: str | None = None


class CertificateFacts(Protocol):
    """What resolvers read about a certificate (``workers.tls.CertificateInfo`` has it)."""

    @property
    def subject(self) -> str: ...
    @property
    def issuer(self) -> str: ...
    @property
    def common_name(self) -> str | None: ...
    @property
    def san_dns_names(self) -> list[str]: ...
    @property
    def san_ip_addresses(self) -> list[str]: ...
    @property
    def not_before(self) -> datetime: ...
    @property
    def not_after(self) -> datetime: ...
    @property
    def sha256(self) -> str: ...
    @property
    def is_uploaded(self) -> bool: ...
    @property
    def uploaded_at(self) -> datetime | None: ...


class TlsControl(Protocol):
    """The mail listeners' certificate, as the system resolvers use it.

    ``workers.tls.TlsManager`` implements it; resolvers may not import workers.
    ``install`` and ``remove_uploaded`` write files: call them in a thread.
    """

    def info(self) -> CertificateFacts: ...
    def ca_info(self) -> CertificateFacts: ...
    def ca_pem(self) -> bytes: ...
    def install(
        self, chain_pem: bytes, key_pem: bytes, uploaded_at: datetime | None = None
    ) -> CertificateFacts: ...
    def remove_uploaded(self) -> CertificateFacts: ...


@dataclass
class Services:
    """Long-lived collaborators built once by the composition root."""

    settings: Settings
    secret_key: str
    tokens: TokenService
    limiter: LoginLimiter
    totp_box: SecretBox
    bus: EventBus
    clock: Callable[[], datetime] = utcnow
    # Set once the mail listeners are up (None while only HTTP runs, as in spec export).
    submission: SmtpTarget | None = None
    # The mail listeners' TLS material (None while only HTTP runs, as in spec export).
    tls: TlsControl | None = None
    # Where this node's own mail listeners answer, by name ("smtp", "imap", "pop3"...):
    # (host, port) reachable from here. Empty while only HTTP runs.
    mail_listeners: dict[str, tuple[str, int]] = field(default_factory=dict)
    # Wakes this process's delivery worker to look at the queue now (None: no worker here;
    # the workers of other nodes find due mail at their next poll).
    wake_outbound: Callable[[], None] | None = None

    @property
    def delivers_outbound(self) -> bool:
        """Whether this node runs the outbound queue's delivery worker (set at start)."""
        return self.wake_outbound is not None


@dataclass
class Context:
    """What a resolver knows about the call it serves."""

    services: Services
    principal: Principal | None = None
    client_ip: str = ""
    user_agent: str = ""
    # Credentials that were presented but rejected, for transports that let
    # public fields through (GraphQL) and fail only the protected ones.
    auth_error: Unauthenticated | None = None

    @property
    def settings(self) -> Settings:
        return self.services.settings

    def now(self) -> datetime:
        return self.services.clock()

    def require_principal(self) -> Principal:
        if self.principal is None:
            raise self.auth_error or Unauthenticated("Not authenticated")
        return self.principal
