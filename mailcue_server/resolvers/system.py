"""Server-wide facts and settings: health, the mail listeners' certificate, settings.

The certificate and its CA are public (every TLS client sees them anyway);
settings and TLS uploads are for admins (scopes ``system:read`` and
``system:write``). The production checklist is in :mod:`.readiness`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from datetime import datetime
from typing import Any

from mailcue_server.config import RelayTls, Settings
from mailcue_server.errors import Invalid, NotFound
from mailcue_server.health import health_fields
from mailcue_server.mail.dns_records import domain_name
from mailcue_server.resolvers import ca_bundle
from mailcue_server.resolvers.context import CertificateFacts, Context, TlsControl
from mailcue_server.schema.types.common import HealthResponse
from mailcue_server.schema.types.system import (
    CaCertificateInfo,
    ListenerTls,
    MailListener,
    ServerSettingsResponse,
    TlsCertificateStatus,
    UpdateServerSettingsRequest,
    UploadTlsCertificateRequest,
)
from mailcue_server.store import settings as stored
from mailcue_server.store import tls_uploads
from mailcue_server.store.credentials import SecretBox

READ = "system:read"
WRITE = "system:write"
CA_FILENAME = "mailcue-ca.pem"
# A real chain is a few kilobytes; this only stops a pasted file of something else.
MAX_PEM_CHARS = 256 * 1024
MAX_MESSAGE_SIZE = 1 << 30  # 1 GiB; MAILCUE_MAX_MESSAGE_SIZE's floor is 1 KiB
MAX_RETENTION_MESSAGES = 10_000_000
MAX_RETENTION_DAYS = 36_500
# Saved Settings fields that wait for a restart: the hostname is in the greeting and
# the certificate. The size limit, the catch-all and the relay apply while the node runs.
RESTART_FIELDS = stored.STARTUP_FIELDS
_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


async def health(ctx: Context) -> HealthResponse:
    """Liveness for load balancers and the SDK; needs no credentials."""
    return HealthResponse(**health_fields(ctx.settings))


_LISTENER_TLS = {
    "smtp": ListenerTls.STARTTLS,
    "submission": ListenerTls.STARTTLS,
    "smtps": ListenerTls.IMPLICIT,
    "imap": ListenerTls.STARTTLS,
    "imaps": ListenerTls.IMPLICIT,
    "pop3": ListenerTls.STARTTLS,
    "pop3s": ListenerTls.IMPLICIT,
    "lmtp": ListenerTls.NONE,
}


async def mail_listeners(ctx: Context) -> list[MailListener]:
    """Where this node's mail listeners answer, for clients to connect to.

    Needs no credentials, like the certificate: a port scan finds as much, and
    a page that helps someone point an application here needs it first.
    """
    return [
        MailListener(name=name, port=port, tls=_LISTENER_TLS.get(name, ListenerTls.NONE))
        for name, (_host, port) in ctx.services.mail_listeners.items()
    ]


# --- the certificate -------------------------------------------------------------


def _tls(ctx: Context) -> TlsControl:
    if ctx.services.tls is None:
        raise NotFound("The mail listeners (and their TLS certificate) are not running")
    return ctx.services.tls


def _ca(facts: CertificateFacts) -> CaCertificateInfo:
    return CaCertificateInfo(
        subject=facts.subject,
        issuer=facts.issuer,
        not_before=facts.not_before,
        not_after=facts.not_after,
        fingerprint_sha256=facts.sha256,
        is_local=not facts.is_uploaded,
    )


def certificate_status(tls: TlsControl, now: datetime) -> TlsCertificateStatus:
    """Describe the certificate new connections get, and the CA to trust for it."""
    leaf = tls.info()
    return TlsCertificateStatus(
        configured=leaf.is_uploaded,
        common_name=leaf.common_name,
        san_dns_names=list(leaf.san_dns_names),
        not_before=leaf.not_before,
        not_after=leaf.not_after,
        fingerprint_sha256=leaf.sha256,
        uploaded_at=leaf.uploaded_at,
        subject=leaf.subject,
        issuer=leaf.issuer,
        san_ip_addresses=list(leaf.san_ip_addresses),
        is_valid=leaf.not_before <= now <= leaf.not_after,
        days_remaining=(leaf.not_after - now).days,
        ca=_ca(tls.ca_info()),
    )


async def certificate(ctx: Context) -> TlsCertificateStatus:
    """The certificate the SMTP, IMAP and POP3 listeners present now; public."""
    return certificate_status(_tls(ctx), ctx.now())


async def ca_certificate_pem(ctx: Context) -> str:
    """The PEM certificate clients should trust: our local CA, or the upload's top."""
    return _tls(ctx).ca_pem().decode("ascii")


async def tls_status(ctx: Context) -> TlsCertificateStatus:
    """The uploaded certificate, or ``configured: false`` while the local CA's is used."""
    ctx.require_principal().require_admin(READ)
    status = certificate_status(_tls(ctx), ctx.now())
    return status if status.configured else TlsCertificateStatus(configured=False)


def _pem(value: str, what: str) -> bytes:
    if len(value) > MAX_PEM_CHARS:
        raise Invalid(f"{what} is too large: at most {MAX_PEM_CHARS} characters of PEM")
    try:
        return value.encode("ascii")
    except UnicodeEncodeError:
        raise Invalid(f"{what} is not PEM: it contains non-ASCII characters") from None


async def upload_tls_certificate(
    ctx: Context, data: UploadTlsCertificateRequest
) -> TlsCertificateStatus:
    """Check and install a certificate chain and key; new connections present it at once.

    Raises:
        Invalid: The key does not match, a certificate is outside its validity,
            the chain does not link, or the PEM is unreadable (nothing changes).
    """
    ctx.require_principal().require_admin(WRITE)
    tls = _tls(ctx)
    chain = _pem(data.certificate, "certificate")
    if data.ca_certificate:
        chain += b"\n" + _pem(data.ca_certificate, "ca_certificate")
    key = _pem(data.private_key, "private_key")
    # Writes and fsyncs files and loads them into OpenSSL: off the event loop.
    installed = await asyncio.to_thread(tls.install, chain, key)
    # The other nodes sharing the database install it at their next sync.
    await tls_uploads.save(
        chain, key, installed.sha256, ctx.services.secret_key, installed.uploaded_at
    )
    return certificate_status(tls, ctx.now())


async def remove_tls_certificate(ctx: Context) -> TlsCertificateStatus:
    """Go back to the local CA's certificate; new connections present it at once.

    Raises:
        NotFound: No certificate was uploaded.
    """
    ctx.require_principal().require_admin(WRITE)
    tls = _tls(ctx)
    try:
        await asyncio.to_thread(tls.remove_uploaded)
    except NotFound:
        # This node may not have installed a shared upload (it refused it): still
        # take it away from the others.
        if (await tls_uploads.wanted()).sha256 is None:
            raise
    await tls_uploads.forget()
    return certificate_status(tls, ctx.now())


# --- settings ----------------------------------------------------------------------


def _running_value(settings: Settings, name: str) -> object:
    return settings.effective_hostname if name == "hostname" else getattr(settings, name)


def _settings_view(
    running: Settings, saved: dict[str, Any], *, delivers_outbound: bool, box: SecretBox
) -> ServerSettingsResponse:
    after_restart = stored.with_saved(running, saved, box=box)
    pending = [
        name
        for name in RESTART_FIELDS
        if _running_value(after_restart, name) != _running_value(running, name)
    ]
    if after_restart.runs_outbound_queue and not delivers_outbound:
        pending.append("relay_host")  # the delivery worker starts with the node
    return ServerSettingsResponse(
        hostname=after_restart.effective_hostname,
        catch_all_enabled=after_restart.accepts_any_recipient,
        domain=after_restart.domain,
        mode=running.mode.value,
        max_message_size=after_restart.max_message_size,
        retention_max_messages=int(saved.get(stored.RETENTION_MAX_MESSAGES) or 0),
        retention_max_age_days=int(saved.get(stored.RETENTION_MAX_AGE_DAYS) or 0),
        relay_host=after_restart.relay_host or None,
        relay_port=after_restart.relay_port,
        relay_tls=after_restart.relay_tls.value,
        outbound_ca_file=after_restart.outbound_ca_file or None,
        relay_username=after_restart.relay_username or None,
        relay_password_set=bool(after_restart.relay_password),
        restart_required=pending,
    )


async def get_settings(ctx: Context) -> ServerSettingsResponse:
    """The saved server-wide settings, and which of them wait for a restart."""
    ctx.require_principal().require_admin(READ)
    return _view(ctx, await stored.saved_system())


def _view(ctx: Context, saved: dict[str, Any]) -> ServerSettingsResponse:
    return _settings_view(
        ctx.settings,
        saved,
        delivers_outbound=ctx.services.delivers_outbound,
        box=stored.settings_box(ctx.services.secret_key),
    )


def _domain(value: str, field: str) -> str:
    try:
        return domain_name(value)
    except Invalid as exc:
        raise Invalid(f"{field}: {exc.message}") from None


def _bounded(value: int, field: str, low: int, high: int) -> int:
    if not low <= value <= high:
        raise Invalid(f"{field} must be between {low} and {high}")
    return value


def _relay_host(value: str) -> str:
    """An IP address or DNS name, or '' (no relay: delivery to each domain's MX)."""
    host = value.strip().rstrip(".").lower()
    if not host:
        return ""
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    if ":" in host:
        raise Invalid("relay_host: give the port in relay_port, not after the host name")
    if len(host) > 253 or not all(_HOST_LABEL.match(label) for label in host.split(".")):
        raise Invalid(f"relay_host: '{value}' is not a host name or IP address")
    return host


def _relay_tls(value: str) -> str:
    mode = value.strip().lower()
    if mode not in {choice.value for choice in RelayTls}:
        choices = ", ".join(choice.value for choice in RelayTls)
        raise Invalid(f"relay_tls must be one of {choices}, not '{value}'")
    return mode


def _changes(settings: Settings, data: UpdateServerSettingsRequest) -> dict[str, Any]:
    """The validated values to save, by name."""
    changes: dict[str, Any] = {}
    if data.catch_all_enabled is not None:
        if data.catch_all_enabled and settings.is_production:
            raise Invalid(
                "catch_all_enabled: production mode accepts mail only for the mailboxes and "
                "aliases of managed domains; the catch-all is a test mode setting"
            )
        changes["catch_all"] = data.catch_all_enabled
    if data.hostname is not None:
        changes["hostname"] = _domain(data.hostname, "hostname")
    if data.domain is not None:
        changes["domain"] = _domain(data.domain, "domain")
    if data.max_message_size is not None:
        changes["max_message_size"] = _bounded(
            data.max_message_size, "max_message_size", 1024, MAX_MESSAGE_SIZE
        )
    if data.retention_max_messages is not None:
        changes[stored.RETENTION_MAX_MESSAGES] = _bounded(
            data.retention_max_messages, "retention_max_messages", 0, MAX_RETENTION_MESSAGES
        )
    if data.retention_max_age_days is not None:
        changes[stored.RETENTION_MAX_AGE_DAYS] = _bounded(
            data.retention_max_age_days, "retention_max_age_days", 0, MAX_RETENTION_DAYS
        )
    if data.relay_host is not None:
        changes["relay_host"] = _relay_host(data.relay_host)
    if data.relay_port is not None:
        changes["relay_port"] = _bounded(data.relay_port, "relay_port", 1, 65535)
    if data.relay_tls is not None:
        changes["relay_tls"] = _relay_tls(data.relay_tls)
    if data.relay_username is not None:
        changes["relay_username"] = _smtp_credential(data.relay_username, "relay_username", 255)
    return changes


def _smtp_credential(value: str, field: str, longest: int) -> str:
    """A login or password SMTP AUTH can carry: no line breaks or NUL, not too long."""
    if len(value) > longest:
        raise Invalid(f"{field} is longer than {longest} characters")
    if any(char in value for char in "\r\n\0"):
        raise Invalid(f"{field} may not contain line breaks or NUL")
    return value


async def update_settings(
    ctx: Context, data: UpdateServerSettingsRequest
) -> ServerSettingsResponse:
    """Validate and save settings; the answer's ``restart_required`` names what waits.

    Retention is read from the database at each use, so it applies at once on
    every node; max_message_size, the catch-all, the relay (host, port, TLS
    mode, login and password) and the outbound CA file apply at once on this node and within
    seconds on the others (the settings-sync worker); hostname and domain when
    a node (re)starts.

    Raises:
        Invalid: A value is out of range or malformed (nothing is saved).
    """
    ctx.require_principal().require_admin(WRITE)
    box = stored.settings_box(ctx.services.secret_key)
    changes = _changes(ctx.settings, data)
    if data.relay_password is not None:
        password = _smtp_credential(data.relay_password, "relay_password", 1024)
        changes["relay_password"] = box.seal(password) if password else ""
    if data.outbound_ca_file is not None:
        changes["outbound_ca_file"] = await ca_bundle.checked_path(data.outbound_ca_file)
    if changes:
        await stored.save_system(changes)
    saved = await stored.saved_system()
    ctx.services.settings = stored.with_live(ctx.settings, saved, box)
    return _view(ctx, saved)
