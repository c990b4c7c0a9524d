"""Typed settings from ``MAILCUE_*`` variables and an optional ``.env`` file.

This is the only module that reads the environment. ``load_settings`` turns a
bad value into one :class:`~mailcue_server.errors.ConfigError` line naming the
variable, so start-up never shows a traceback for a typo.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mailcue_server.errors import ConfigError

DEFAULT_ADMIN_PASSWORD = "mailcue"  # noqa: S105 - the documented test-mode default
MIN_PRODUCTION_SECRET_LENGTH = 32


class Mode(StrEnum):
    """How strict the server is: catch-all testing or a real mail server."""

    TEST = "test"
    PRODUCTION = "production"


class BounceReturn(StrEnum):
    """What a bounce carries of the failed message when its sender did not say (RET)."""

    HEADERS = "headers"  # its header only (text/rfc822-headers)
    FULL = "full"  # the whole message (message/rfc822)


class RelayTls(StrEnum):
    """How the outbound queue protects its connection to the relay (smarthost)."""

    STARTTLS = "starttls"
    TLS = "tls"
    NONE = "none"


Port = int


class Settings(BaseSettings):
    """Every knob of the server. Field ``x`` is read from ``MAILCUE_X``."""

    model_config = SettingsConfigDict(
        env_prefix="MAILCUE_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
    )

    mode: Mode = Field(default=Mode.TEST, description="test (catch-all) or production.")
    domain: str = Field(default="mailcue.local", description="Primary mail domain.")
    hostname: str = Field(
        default="", description="Name used in greetings and certificates; empty: mail.<domain>."
    )
    admin_user: str = Field(default="admin", description="Admin created on first start.")
    admin_password: str = Field(
        default=DEFAULT_ADMIN_PASSWORD,
        description="Its password; production refuses the default.",
    )
    admin_email: str = Field(default="", description="Its email; empty: <user>@<domain>.")
    secret_key: str = Field(
        default="",
        description="Signs tokens and seals secrets; empty: generated once into the data dir. "
        "Production needs 32+ characters; nodes of a cluster share one.",
    )
    access_token_expire_minutes: int = Field(
        default=30, ge=1, le=24 * 60, description="Access token lifetime."
    )
    refresh_token_expire_days: int = Field(
        default=7, ge=1, le=365, description="Refresh token lifetime."
    )
    refresh_reuse_grace_seconds: float = Field(
        default=10.0,
        ge=0,
        le=300,
        description="Seconds after a refresh during which the token it spent, presented "
        "again, is only refused (two tabs refreshing at once) instead of signing the whole "
        "session out; 0 revokes on every reuse.",
    )
    data_dir: Path = Field(
        default=Path("./mailcue-data"), description="Database, secret and certificates."
    )
    database_url: str = Field(
        default="",
        description="postgres://user:pass@host/db selects PostgreSQL; empty: SQLite in the "
        "data dir.",
    )
    redis_url: str = Field(
        default="",
        description="redis://host:6379/0 shares live events between nodes; empty: in-process.",
    )
    bind: str = Field(default="127.0.0.1", description="Listen address of every listener.")
    http_port: Port = Field(
        default=8088, ge=0, le=65535, description="REST, GraphQL, docs; 0 picks a free port."
    )
    smtp_port: Port = Field(default=1025, ge=0, le=65535, description="Inbound SMTP.")
    submission_port: Port = Field(
        default=1587, ge=0, le=65535, description="Submission (STARTTLS + AUTH)."
    )
    smtps_port: Port = Field(default=1465, ge=0, le=65535, description="SMTP over implicit TLS.")
    imap_port: Port = Field(default=1143, ge=0, le=65535, description="IMAP (STARTTLS).")
    imaps_port: Port = Field(default=1993, ge=0, le=65535, description="IMAP over TLS.")
    pop3_port: Port = Field(default=1110, ge=0, le=65535, description="POP3 (STLS).")
    pop3s_port: Port = Field(default=1995, ge=0, le=65535, description="POP3 over TLS.")
    lmtp_port: Port | None = Field(
        default=None, ge=0, le=65535, description="LMTP for a Postfix in front; empty: off."
    )
    max_message_size: int = Field(
        default=25 * 1024 * 1024,
        ge=1024,
        description="SMTP SIZE limit in bytes; larger mail gets 552.",
    )
    catch_all: bool = Field(
        default=True,
        description="Test mode: accept mail for any recipient and make its mailbox on first "
        "mail. Off: only existing mailboxes and aliases (550 5.1.1 for the rest). "
        "Production mode never accepts any recipient.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Connections each listener (SMTP, submission, SMTPS, LMTP, IMAP, IMAPS, "
        "POP3, POP3S, HTTP) holds at most; all listeners together stay below the open-file "
        "limit.",
    )
    max_connections_per_client: int = Field(
        default=200,
        ge=1,
        description="Connections one client address (an IPv6 /64) holds at most on each "
        "listener; loopback included.",
    )
    prelogin_idle_timeout: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Seconds an IMAP or POP3 client may stay silent before it logs in "
        "(after login: 31 minutes IMAP, 10 minutes POP3).",
    )
    smtp_idle_timeout: float = Field(
        default=300.0,
        gt=0,
        le=3600,
        description="Seconds an SMTP client may stay silent, from the greeting on, before "
        "it gets 421 (RFC 5321 asks for at least 300).",
    )
    http_keepalive_timeout: int = Field(
        default=5,
        ge=1,
        le=3600,
        description="Seconds an HTTP connection may stay idle before its first request and "
        "between requests.",
    )
    http_header_timeout: float = Field(
        default=20.0,
        gt=0,
        le=600,
        description="Seconds a client may take to send a request line and its headers, then 408.",
    )
    dns_resolver: str = Field(
        default="",
        description="DNS server for MX/A/TXT lookups, 'IP' or 'IP:PORT' "
        "(e.g. 1.1.1.1, 127.0.0.1:5353, [::1]:53); empty uses the system resolver.",
    )
    dns_check_interval: int = Field(
        default=3600, ge=0, description="Seconds between DNS re-checks of a domain; 0 is off."
    )
    node_sync_interval: float = Field(
        default=5.0,
        ge=0,
        description="Seconds between reads of what other nodes saved (live settings, the "
        "uploaded TLS certificate); 0 turns it off.",
    )
    sse_heartbeat_seconds: float = Field(
        default=15.0,
        gt=0,
        le=3600,
        description="Seconds between `event: heartbeat` messages on the SSE stream.",
    )
    event_replay_size: int = Field(
        default=5000,
        ge=1,
        le=1_000_000,
        description="Recent events kept for SSE clients that reconnect with Last-Event-ID "
        "(per node; with Redis, one buffer shared by all nodes).",
    )
    retention_interval: float = Field(
        default=300.0,
        ge=0,
        description="Seconds between runs of the retention worker, which removes mail "
        "beyond the message and age limits; 0 is off.",
    )
    inbound_auth: bool | None = Field(
        default=None,
        description="Check SPF, DKIM and DMARC of mail received on the SMTP port and add "
        "an Authentication-Results header. Unset: on in production, off in test mode "
        "(test mail then touches no DNS).",
    )
    inbound_auth_timeout: float = Field(
        default=2.0,
        gt=0,
        le=30,
        description="Seconds all DNS lookups of one message's inbound checks may take; "
        "then the unanswered checks are temperror.",
    )
    validation_smtp_port: Port = Field(
        default=25, ge=1, le=65535, description="Port of the MX that address validation probes."
    )
    validation_timeout: float = Field(
        default=10.0,
        gt=0,
        le=120,
        description="Seconds each network step of address validation may take.",
    )
    validation_helo_name: str = Field(
        default="", description="EHLO name of the validation probe; empty uses the hostname."
    )
    validation_mail_from: str = Field(
        default="",
        description="MAIL FROM of the validation probe; empty uses postmaster@<hostname>.",
    )
    validation_batch_concurrency: int = Field(
        default=8,
        ge=1,
        le=64,
        description="Addresses of one POST /emails/validate-batch checked at the same time.",
    )
    suppression_bounce_rate: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Hard-bounce rate of a recipient domain (over the last 30 days of "
        "recorded outcomes) above which that domain is suppressed for the user.",
    )
    suppression_min_observations: int = Field(
        default=5,
        ge=1,
        description="Recorded outcomes a domain needs before its bounce rate can suppress it.",
    )
    suppression_hours: float = Field(
        default=24.0,
        gt=0,
        description="Hours a suppressed domain stays paused after its last qualifying bounce.",
    )
    send_canary_interval: float = Field(
        default=30.0,
        ge=0,
        description="Seconds between looks for staged sends whose hold window has ended "
        "(auto_release); 0 turns automatic decisions off.",
    )
    outbound_enabled: bool = Field(
        default=False,
        description="Run the outbound delivery queue in test mode too "
        "(production mode and a configured relay always run it).",
    )
    outbound_smtp_port: Port = Field(
        default=25, ge=1, le=65535, description="Port of the recipients' MX that mail goes to."
    )
    outbound_mta_sts_port: Port = Field(
        default=443, ge=1, le=65535, description="HTTPS port MTA-STS policies are fetched from."
    )
    outbound_ca_file: str = Field(
        default="",
        description="Extra CA bundle (PEM) trusted, besides the system's, for MTA-STS "
        "policy hosts, MX certificates under MTA-STS and the relay.",
    )
    outbound_timeout: float = Field(
        default=60.0, gt=0, le=600, description="Seconds each outbound SMTP step may take."
    )
    outbound_concurrency: int = Field(
        default=8, ge=1, le=256, description="Messages one node delivers at the same time."
    )
    outbound_poll_interval: float = Field(
        default=5.0, gt=0, le=300, description="Seconds between looks at the queue."
    )
    outbound_retry_base: float = Field(
        default=60.0, gt=0, description="Seconds before the first retry; doubles each time."
    )
    outbound_retry_max: float = Field(
        default=4 * 3600.0, gt=0, description="Longest wait between two retries, in seconds."
    )
    outbound_give_up_after: float = Field(
        default=4 * 24 * 3600.0,
        gt=0,
        description="Seconds after queueing when a deferred message bounces.",
    )
    bounce_return: BounceReturn = Field(
        default=BounceReturn.HEADERS,
        description="What a bounce returns of the failed message, 'headers' or 'full', "
        "unless its sender asked with RET=HDRS or RET=FULL (RFC 3461).",
    )
    relay_host: str = Field(
        default="", description="Smarthost that takes all outgoing mail; empty delivers to MX."
    )
    relay_port: Port = Field(default=587, ge=1, le=65535, description="The relay's port.")
    relay_username: str = Field(
        default="", description="SMTP AUTH user at the relay; empty skips AUTH."
    )
    relay_password: str = Field(default="", description="SMTP AUTH password at the relay.")
    relay_tls: RelayTls = Field(
        default=RelayTls.STARTTLS,
        description="starttls, tls (implicit, e.g. port 465) or none; the certificate is "
        "verified.",
    )
    keyserver_url: str = Field(
        default="https://keys.openpgp.org",
        description="Base URL of the VKS keyserver GPG keys are published to.",
    )
    keyserver_timeout: float = Field(
        default=10.0, gt=0, le=120, description="Seconds each keyserver request may take."
    )
    gpg_auto_import: bool = Field(
        default=False,
        description="Import public keys that received mail offers (application/pgp-keys "
        "parts, Autocrypt headers) as contact keys of the mailbox owner when it is read.",
    )
    login_max_attempts: int = Field(
        default=5,
        ge=1,
        description="Failed logins per client address and name, over HTTP, SMTP AUTH, IMAP "
        "and POP3 together...",
    )
    login_window_seconds: int = Field(
        default=300,
        ge=1,
        description="...within this window; then that client's logins for that name are "
        "refused (HTTP 429) until the oldest failure is this old.",
    )
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated IPs or CIDR networks of reverse proxies whose "
        "X-Forwarded-For names the HTTP client (login limit, sessions); empty: trust none.",
    )
    log_level: str = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR.")

    @field_validator("lmtp_port", mode="before")
    @classmethod
    def _empty_is_off(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("domain", "hostname", "admin_user")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxy_networks(cls, value: str) -> str:
        networks = []
        for item in value.split(","):
            if item.strip():
                try:
                    networks.append(str(ipaddress.ip_network(item.strip(), strict=False)))
                except ValueError:
                    raise ValueError(f"{item.strip()!r} is not an IP address or network") from None
        return ",".join(networks)

    @field_validator("dns_resolver")
    @classmethod
    def _resolver_address(cls, value: str) -> str:
        value = value.strip()
        if value:
            parse_nameserver(value)  # raises ValueError with the reason
        return value

    @property
    def is_production(self) -> bool:
        return self.mode is Mode.PRODUCTION

    @property
    def effective_hostname(self) -> str:
        """The name we greet with and put in certificates."""
        return self.hostname or f"mail.{self.domain}"

    @property
    def accepts_any_recipient(self) -> bool:
        """Test mode's catch-all, unless turned off (:attr:`catch_all`)."""
        return self.catch_all and not self.is_production

    @property
    def checks_inbound_auth(self) -> bool:
        """Whether received mail gets SPF/DKIM/DMARC results (:attr:`inbound_auth`)."""
        return self.is_production if self.inbound_auth is None else self.inbound_auth

    @property
    def runs_outbound_queue(self) -> bool:
        """Whether this node delivers queued mail (production, a relay, or asked to)."""
        return self.is_production or bool(self.relay_host) or self.outbound_enabled

    @property
    def trusted_proxy_list(self) -> list[str]:
        """``MAILCUE_TRUSTED_PROXIES`` as networks (``10.0.0.0/8``, ``192.0.2.1/32``)."""
        return [item for item in self.trusted_proxies.split(",") if item]

    @property
    def dns_nameserver(self) -> tuple[str, int] | None:
        """``MAILCUE_DNS_RESOLVER`` as (IP, port), or None for the system resolver."""
        return parse_nameserver(self.dns_resolver) if self.dns_resolver else None

    @property
    def effective_validation_helo(self) -> str:
        return self.validation_helo_name or self.effective_hostname

    @property
    def effective_validation_mail_from(self) -> str:
        return self.validation_mail_from or f"postmaster@{self.effective_hostname}"

    @property
    def effective_admin_email(self) -> str:
        return self.admin_email or f"{self.admin_user}@{self.domain}"

    @property
    def effective_database_url(self) -> str:
        """The database URL, defaulting to a WAL-mode SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        path = (self.data_dir / "mailcue.db").resolve()
        return f"sqlite://{path}?journal_mode=WAL&synchronous=NORMAL&foreign_keys=ON"


def parse_nameserver(text: str) -> tuple[str, int]:
    """Split ``"IP"``, ``"IP:PORT"`` or ``"[IPv6]:PORT"`` into (IP, port); port defaults to 53.

    Raises:
        ValueError: not an IP address, or a port outside 1-65535.
    """
    host, port = text.strip(), "53"
    if host.startswith("["):
        host, _, rest = host[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError("expected [IPv6]:PORT")
            port = rest[1:]
    elif host.count(":") == 1:
        host, port = host.split(":")
    try:
        address = str(ipaddress.ip_address(host))
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    if not (port.isascii() and port.isdigit()) or not 1 <= int(port) <= 65535:
        raise ValueError(f"port {port!r} is not in 1-65535")
    return address, int(port)


def load_settings(**overrides: Any) -> Settings:
    """Read the settings and check the production rules.

    Args:
        **overrides: values that win over the environment (tests use this).

    Raises:
        ConfigError: one line naming the offending ``MAILCUE_*`` variable.
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else "?"
        raise ConfigError(
            f"MAILCUE_{name.upper()}: {first['msg']} (got {first.get('input')!r})"
        ) from None
    _check_production(settings)
    return settings


def _check_production(settings: Settings) -> None:
    if not settings.is_production:
        return
    if settings.admin_password == DEFAULT_ADMIN_PASSWORD:
        raise ConfigError(
            "MAILCUE_ADMIN_PASSWORD: production mode refuses the default password; set your own"
        )
    if len(settings.secret_key) < MIN_PRODUCTION_SECRET_LENGTH:
        raise ConfigError(
            "MAILCUE_SECRET_KEY: production mode needs a secret of at least "
            f"{MIN_PRODUCTION_SECRET_LENGTH} characters"
        )


def resolve_secret_key(settings: Settings) -> str:
    """Return the configured secret, or the one persisted in the data dir.

    On first start without ``MAILCUE_SECRET_KEY`` a random secret is generated
    and written (mode 0600), so tokens survive restarts and no constant key
    ever signs anything. The file is written to a temporary name and renamed,
    so a crash never leaves an empty secret behind.
    """
    if settings.secret_key:
        return settings.secret_key
    path = settings.data_dir / "secret_key"
    if path.exists():
        stored = path.read_text(encoding="utf-8").strip()
        if stored:
            return stored
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(48)
    temporary = path.with_name(f".secret_key.{secrets.token_hex(4)}")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    return key
