"""Server-wide shapes: the TLS certificate, system settings and the production checklist.

Field names follow the reference API (``TlsCertificateStatusResponse``,
``ServerSettingsResponse``, ``ProductionStatusResponse``), so the official
SDK parses them; our additions come after the reference fields.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from enum import StrEnum

import strawberry


@strawberry.enum(description="How a mail listener uses TLS.")
class ListenerTls(StrEnum):
    NONE = "none"
    STARTTLS = "starttls"  # offered on the plain port (RFC 3207, RFC 2595)
    IMPLICIT = "implicit"  # TLS from the first byte (RFC 8314)


@strawberry.type(
    name="MailListener",
    description="A mail listener of this node: the port clients connect to and its TLS.",
)
class MailListener:
    name: str = strawberry.field(
        description="smtp, submission, smtps, imap, imaps, pop3, pop3s or lmtp."
    )
    port: int
    tls: ListenerTls


@strawberry.type(name="CaCertificate", description="The certificate clients should trust.")
class CaCertificateInfo:
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    fingerprint_sha256: str
    is_local: bool = strawberry.field(description="Our own local CA rather than an upload.")


@strawberry.type(
    name="TlsCertificate",
    description="The certificate the SMTP, IMAP and POP3 listeners present to new connections.",
)
class TlsCertificateStatus:
    configured: bool = strawberry.field(
        description="An uploaded certificate is in use (false: the local CA's)."
    )
    common_name: str | None = None
    # dataclasses.field: strawberry.field would hide the list type from pydantic.
    san_dns_names: list[str] = dataclasses.field(default_factory=list)
    not_before: datetime | None = None
    not_after: datetime | None = None
    fingerprint_sha256: str | None = None  # SHA-256 of the DER leaf, "AB:CD:..."
    uploaded_at: datetime | None = None
    subject: str | None = None
    issuer: str | None = None
    san_ip_addresses: list[str] = dataclasses.field(default_factory=list)
    is_valid: bool = False  # within its validity period now
    days_remaining: int | None = None
    ca: CaCertificateInfo | None = None


@strawberry.input(
    name="UploadTlsCertificateInput",
    description="A certificate chain and its unencrypted private key, PEM.",
)
class UploadTlsCertificateRequest:
    certificate: str = strawberry.field(
        description="The server's certificate first, then each issuer (PEM)."
    )
    private_key: str = strawberry.field(description="The first certificate's key (PEM).")
    # Plain defaults: FastAPI refuses a strawberry.field(default=...) as a pydantic field.
    ca_certificate: str | None = None  # issuer certificate(s) appended to the chain


@strawberry.type(name="ServerSettings")
class ServerSettingsResponse:
    hostname: str
    catch_all_enabled: bool = strawberry.field(
        description="Any recipient is accepted and gets a mailbox (test mode; on by default, "
        "applies at once on every node). Off: unknown recipients get 550 5.1.1. Production "
        "mode: always false."
    )
    domain: str
    mode: str
    max_message_size: int = strawberry.field(description="Bytes; SMTP SIZE and API sends.")
    retention_max_messages: int = strawberry.field(description="Per mailbox; 0 is no limit.")
    retention_max_age_days: int = strawberry.field(description="0 keeps mail forever.")
    # strawberry.field would turn the optional into a type pydantic cannot read.
    relay_host: str | None  # the smarthost; null delivers to each domain's MX
    relay_port: int
    relay_tls: str = strawberry.field(
        default="starttls",
        description="How the relay connection is protected: `starttls`, `tls` (implicit, "
        "e.g. port 465) or `none`; its certificate is verified.",
    )
    # Extra CA bundle (PEM path on each node) trusted besides the system's, for the relay,
    # MTA-STS policy hosts and MX certificates under MTA-STS; null trusts the system's only.
    outbound_ca_file: str | None = None
    # The relay's SMTP AUTH login; null: no AUTH. Its password is never shown back.
    relay_username: str | None = None
    relay_password_set: bool = False
    # Saved values this node uses only after a restart.
    restart_required: list[str] = dataclasses.field(default_factory=list)


@strawberry.input(
    name="UpdateServerSettingsInput", description="Only the fields given are changed."
)
class UpdateServerSettingsRequest:
    hostname: str | None = None
    catch_all_enabled: bool | None = None
    domain: str | None = None
    max_message_size: int | None = None
    retention_max_messages: int | None = None
    retention_max_age_days: int | None = None
    relay_host: str | None = None  # an empty string removes the relay (delivery by MX)
    relay_port: int | None = None
    relay_tls: str | None = None  # starttls, tls or none
    outbound_ca_file: str | None = None  # an absolute path to PEM; "" removes it
    relay_username: str | None = None  # "" removes the login (no AUTH at the relay)
    relay_password: str | None = None  # write-only; stored sealed with the server secret


class CheckStatus(StrEnum):
    """How one item of the production checklist stands."""

    PASS = "pass"  # noqa: S105 - a status word, not a password
    FAIL = "fail"  # blocks production use
    WARNING = "warning"  # recommended, not required
    SKIPPED = "skipped"  # could not be checked here; the hint says why


CheckStatusEnum = strawberry.enum(CheckStatus, name="CheckStatus")


@strawberry.type(name="ProductionCheck")
class ProductionCheck:
    key: str
    label: str
    status: CheckStatus
    passed: bool
    hint: str = strawberry.field(description="What was found, and how to fix it.")


@strawberry.type(name="FeatureFlags")
class FeatureFlags:
    inject: bool
    messaging_sandbox: bool
    httpbin: bool


@strawberry.type(
    name="ProductionStatus",
    description="Whether this server is ready to run as a real mail server.",
)
class ProductionStatusResponse:
    mode: str
    tls_configured: bool
    domains_configured: int
    domains_verified: int
    smtp_relay_refused: bool = strawberry.field(
        description="The inbound SMTP port refuses, for an anonymous client, a recipient "
        "of a domain that is not ours (check smtp_relay_refused)."
    )
    imap_pop3_tls_required: bool = strawberry.field(
        description="IMAP and POP3 take no password before STARTTLS "
        "(check imap_pop3_tls_required)."
    )
    # The reference contract's names (after the original's Postfix and Dovecot), kept
    # for clients of that shape: the same values as the two fields above.
    postfix_strict_mode: bool = strawberry.field(
        description="Same as smtpRelayRefused (the reference contract's name).",
        deprecation_reason="Named after a program this server does not use; "
        "read smtpRelayRefused.",
    )
    dovecot_tls_required: bool = strawberry.field(
        description="Same as imapPop3TlsRequired (the reference contract's name).",
        deprecation_reason="Named after a program this server does not use; "
        "read imapPop3TlsRequired.",
    )
    secure_cookies: bool
    acme_configured: bool
    features: FeatureFlags
    ready: bool = strawberry.field(description="No check fails (warnings allowed).")
    checks: list[ProductionCheck] = dataclasses.field(default_factory=list)
