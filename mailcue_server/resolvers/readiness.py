"""The production checklist: is this node ready to run as a real mail server?

Each check says pass, fail (blocks production use), warning (recommended) or
skipped, with a hint that tells what was found and how to fix it. Checks only
read. The network probes: a short TCP connect to the configured relay, and
this node's own SMTP, IMAP and POP3 listeners asked over loopback what they
let an anonymous client do (``readiness_probes.py``): relay to a domain that
is not ours, log in with a password before TLS.

The reference response fixes two fields named after the original's programs,
``postfix_strict_mode`` and ``dovecot_tls_required``; REST keeps them (the
SDKs read that shape) with the values of our own checks
``smtp_relay_refused`` and ``imap_pop3_tls_required``, which say what is
checked and appear in ``checks`` under the same keys.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from mailcue_server.config import DEFAULT_ADMIN_PASSWORD, MIN_PRODUCTION_SECRET_LENGTH
from mailcue_server.resolvers import readiness_probes as probes
from mailcue_server.resolvers import system
from mailcue_server.resolvers.context import Context
from mailcue_server.schema.types.system import (
    CheckStatus,
    FeatureFlags,
    ProductionCheck,
    ProductionStatusResponse,
    TlsCertificateStatus,
)
from mailcue_server.store import domains, users
from mailcue_server.store import settings as stored
from mailcue_server.store.credentials import verify_password
from mailcue_server.store.db import engine_name
from mailcue_server.store.domain_models import Domain
from mailcue_server.store.models import User

RELAY_TIMEOUT = 3.0  # seconds; a reachable smarthost answers a TCP connect in far less
EXPIRY_WARNING = timedelta(days=14)
_MAX_NAMES = 5


def _check(key: str, label: str, status: CheckStatus, hint: str) -> ProductionCheck:
    return ProductionCheck(
        key=key, label=label, status=status, passed=status is CheckStatus.PASS, hint=hint
    )


def _names(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_NAMES])
    return shown + (f" and {len(items) - _MAX_NAMES} more" if len(items) > _MAX_NAMES else "")


def _mode(ctx: Context) -> ProductionCheck:
    label = "Production mode"
    if ctx.settings.is_production:
        return _check("mode", label, CheckStatus.PASS, "MAILCUE_MODE=production")
    return _check(
        "mode",
        label,
        CheckStatus.FAIL,
        "Test mode accepts mail for any address and sends nothing out; "
        "set MAILCUE_MODE=production",
    )


async def _admin_password(admins: list[User]) -> ProductionCheck:
    label = "Default admin password changed"
    checks = [verify_password(admin.password_hash, DEFAULT_ADMIN_PASSWORD) for admin in admins]
    results = await asyncio.gather(*checks)
    weak = [admin.username for admin, same in zip(admins, results, strict=True) if same]
    if weak:
        return _check(
            "admin_password",
            label,
            CheckStatus.FAIL,
            f"Admin account(s) {_names(weak)} still use the default password; "
            "change it with PUT /auth/password",
        )
    return _check("admin_password", label, CheckStatus.PASS, "No admin uses the default password")


def _secret_key(ctx: Context) -> ProductionCheck:
    label = "Secret key set"
    length = len(ctx.settings.secret_key)
    if length >= MIN_PRODUCTION_SECRET_LENGTH:
        return _check("secret_key", label, CheckStatus.PASS, "MAILCUE_SECRET_KEY is set")
    found = (
        f"MAILCUE_SECRET_KEY has {length} characters"
        if length
        else f"The secret key was generated into {ctx.settings.data_dir / 'secret_key'}"
    )
    return _check(
        "secret_key",
        label,
        CheckStatus.FAIL,
        f"{found}; production needs MAILCUE_SECRET_KEY of at least "
        f"{MIN_PRODUCTION_SECRET_LENGTH} characters, the same on every node",
    )


def _admin_2fa(admins: list[User]) -> ProductionCheck:
    label = "Two-factor authentication for admins"
    missing = [admin.username for admin in admins if not admin.totp_enabled]
    if missing:
        return _check(
            "admin_2fa",
            label,
            CheckStatus.FAIL,
            f"Admin account(s) {_names(missing)} have no TOTP; turn it on with "
            "POST /auth/totp/setup and /auth/totp/confirm",
        )
    return _check("admin_2fa", label, CheckStatus.PASS, "Every admin uses TOTP")


def _covers(names: list[str], host: str) -> bool:
    """Whether a SAN list covers ``host``, a wildcard matching one left-most label."""
    parent = host.partition(".")[2]
    return any(name == host or (name.startswith("*.") and name[2:] == parent) for name in names)


def _tls_checks(ctx: Context) -> list[ProductionCheck]:
    trusted, valid = "TLS certificate trusted", "TLS certificate valid"
    if ctx.services.tls is None:
        hint = "The mail listeners are not running on this node"
        return [
            _check("tls_trusted", trusted, CheckStatus.SKIPPED, hint),
            _check("tls_valid", valid, CheckStatus.SKIPPED, hint),
        ]
    now, host = ctx.now(), ctx.settings.effective_hostname
    cert = system.certificate_status(ctx.services.tls, now)
    if cert.configured:
        first = _check("tls_trusted", trusted, CheckStatus.PASS, f"Issued by {cert.issuer}")
    else:
        first = _check(
            "tls_trusted",
            trusted,
            CheckStatus.FAIL,
            "The listeners use the local MailCue CA, which other servers and mail clients "
            f"don't trust; upload a certificate for {host} with PUT /system/tls",
        )
    return [first, _tls_valid(cert, valid, host, now)]


def _tls_valid(
    cert: TlsCertificateStatus, label: str, host: str, now: datetime
) -> ProductionCheck:
    assert cert.not_before is not None and cert.not_after is not None  # noqa: S101 - served
    if not cert.is_valid:
        when = "starts" if now < cert.not_before else "ended"
        bound = cert.not_before if now < cert.not_before else cert.not_after
        hint = f"The certificate's validity {when} {bound:%Y-%m-%d %H:%M} UTC; upload a new one"
        return _check("tls_valid", label, CheckStatus.FAIL, hint)
    if cert.configured and not _covers(cert.san_dns_names, host):
        hint = f"The certificate does not name {host} (it names {_names(cert.san_dns_names)})"
        return _check("tls_valid", label, CheckStatus.FAIL, hint)
    left = f"valid until {cert.not_after:%Y-%m-%d} ({cert.days_remaining} days)"
    if cert.not_after - now < EXPIRY_WARNING:
        return _check("tls_valid", label, CheckStatus.WARNING, f"Renew soon: {left}")
    return _check("tls_valid", label, CheckStatus.PASS, f"Covers {host}, {left}")


def _domain_checks(ctx: Context, active: list[Domain]) -> list[ProductionCheck]:
    if not active:
        return [
            _check(
                "domains",
                "Managed domains",
                CheckStatus.FAIL,
                "No active managed domain: add the domain you receive mail for with POST /domains",
            )
        ]
    checks = []
    for domain in active:
        states = domains.record_states(domain, ctx.settings.effective_hostname)
        label, key = f"DNS of {domain.name} verified", f"domain_dns:{domain.name}"
        bad = [
            f"{s.record.record_type} {s.record.hostname}"
            for s in states
            if s.record.required and not s.verified
        ]
        if not bad:
            checks.append(_check(key, label, CheckStatus.PASS, "Every required record verified"))
            continue
        hint = (
            f"Not verified: {_names(bad)}; publish the records GET /domains/{domain.name} "
            f"lists, then POST /domains/{domain.name}/verify-dns"
        )
        checks.append(_check(key, label, CheckStatus.FAIL, hint))
    return checks


async def _dkim_keys(ctx: Context, active: list[Domain]) -> ProductionCheck:
    label = "DKIM keys present"
    if not active:
        return _check("dkim_keys", label, CheckStatus.SKIPPED, "No active managed domain")
    broken = []
    for domain in active:
        try:
            key = await domains.signing_key(domain.name, ctx.services.secret_key)
        except ValueError:
            key = None
        if key is None or not key.private_key_pem:
            broken.append(domain.name)
    if broken:
        hint = (
            f"No usable DKIM key for {_names(broken)} (was the secret key changed?); "
            "delete and add the domain again to make a new key"
        )
        return _check("dkim_keys", label, CheckStatus.FAIL, hint)
    return _check("dkim_keys", label, CheckStatus.PASS, f"{len(active)} domain(s) sign mail")


def _database(ctx: Context) -> ProductionCheck:
    label = "Database engine"
    if engine_name(ctx.settings.effective_database_url) == "postgresql":
        return _check("database", label, CheckStatus.PASS, "PostgreSQL")
    return _check(
        "database",
        label,
        CheckStatus.WARNING,
        "SQLite: fine for one node; for production or several nodes set "
        "MAILCUE_DATABASE_URL=postgres://...",
    )


def _event_bus(ctx: Context) -> ProductionCheck:
    label = "Event bus"
    if ctx.settings.redis_url:
        return _check("event_bus", label, CheckStatus.PASS, "Redis: events reach every node")
    return _check(
        "event_bus",
        label,
        CheckStatus.WARNING,
        "In-process bus: fine for one node; set MAILCUE_REDIS_URL=redis://... "
        "when several nodes share the database",
    )


async def _delivery(ctx: Context) -> ProductionCheck:
    key, label = "outbound_delivery", "Relay or MX delivery reachable"
    # The relay as saved: what an admin just changed is what they want checked (on a
    # node that runs the queue it is also the one in use, PUT applies it live).
    saved = stored.with_saved(ctx.settings, await stored.saved_system())
    if not saved.relay_host:
        return _check(
            key,
            label,
            CheckStatus.SKIPPED,
            "No relay set: mail goes to each recipient domain's MX on port "
            f"{saved.outbound_smtp_port}, which many hosting providers block; check that, "
            "or set relay_host in PUT /system/settings",
        )
    target = f"{saved.relay_host}:{saved.relay_port}"
    pending = ""
    if not ctx.services.delivers_outbound:
        pending = " (saved; this node starts its outbound queue at the next restart)"
    try:
        async with asyncio.timeout(RELAY_TIMEOUT):
            _, writer = await asyncio.open_connection(saved.relay_host, saved.relay_port)
    except (OSError, TimeoutError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        hint = f"Cannot connect to the relay {target}{pending}: {reason}"
        return _check(key, label, CheckStatus.FAIL, hint)
    writer.close()
    hint = f"The relay {target}{pending} accepts connections"
    return _check(key, label, CheckStatus.PASS, hint)


def _not_listening(key: str, label: str, names: str) -> ProductionCheck:
    hint = f"The {names} listener(s) are not running on this node"
    return _check(key, label, CheckStatus.SKIPPED, hint)


async def _smtp_relay(ctx: Context) -> ProductionCheck:
    key, label = "smtp_relay_refused", "SMTP refuses to relay for strangers"
    where = ctx.services.mail_listeners.get("smtp")
    if where is None:
        return _not_listening(key, label, "SMTP")
    host, port = where
    try:
        answer = await probes.smtp_relay(host, port, ctx.settings.effective_hostname)
    except (probes.ProbeError, OSError, TimeoutError) as exc:
        hint = f"Could not ask our SMTP port {port}: {exc or 'no answer in time'}"
        return _check(key, label, CheckStatus.FAIL, hint)
    recipient = probes.RELAY_PROBE_RECIPIENT
    if answer.refused:
        hint = f"Port {port} refused RCPT TO:<{recipient}> from a stranger: {answer.evidence}"
        return _check(key, label, CheckStatus.PASS, hint)
    hint = (
        f"Port {port} accepted RCPT TO:<{recipient}> from a stranger "
        f"({answer.evidence}): test mode takes mail for any address; "
        "MAILCUE_MODE=production accepts only your domains' mailboxes and aliases"
    )
    return _check(key, label, CheckStatus.FAIL, hint)


async def _imap_pop3_tls(ctx: Context) -> ProductionCheck:
    key, label = "imap_pop3_tls_required", "IMAP and POP3 need TLS before a password"
    imap, pop3 = ctx.services.mail_listeners.get("imap"), ctx.services.mail_listeners.get("pop3")
    if imap is None or pop3 is None:
        return _not_listening(key, label, "IMAP or POP3")
    found = await asyncio.gather(
        probes.imap_plaintext_login(*imap),
        probes.pop3_plaintext_login(*pop3),
        return_exceptions=True,
    )
    open_ports: list[str] = []
    for name, (_, port), result in zip(("IMAP", "POP3"), (imap, pop3), found, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, (probes.ProbeError, OSError, TimeoutError)):
                raise result
            hint = f"Could not ask our {name} port {port}: {result or 'no answer in time'}"
            return _check(key, label, CheckStatus.FAIL, hint)
        if not result.refused:
            open_ports.append(f"{name} on port {port}")
    if open_ports:
        verb = "takes" if len(open_ports) == 1 else "take"
        hint = (
            f"{' and '.join(open_ports)} {verb} a password before STARTTLS (test mode "
            "allows it); MAILCUE_MODE=production refuses it"
        )
        return _check(key, label, CheckStatus.FAIL, hint)
    hint = (
        f"IMAP on port {imap[1]} advertises LOGINDISABLED and POP3 on port {pop3[1]} offers "
        "no USER or SASL until STARTTLS; the TLS ports are TLS from the first byte"
    )
    return _check(key, label, CheckStatus.PASS, hint)


async def production_status(ctx: Context) -> ProductionStatusResponse:
    """Run the checklist. Admin only (``system:read``)."""
    ctx.require_principal().require_admin(system.READ)
    admins = [u for u in await users.list_all() if u.is_admin and u.is_active]
    all_domains = await domains.list_domains()
    active = [d for d in all_domains if d.is_active]
    # The slow ones together: Argon2 checks in threads, connections to the relay and to
    # our own listeners.
    password, dkim, delivery, relay, tls_first = await asyncio.gather(
        _admin_password(admins),
        _dkim_keys(ctx, active),
        _delivery(ctx),
        _smtp_relay(ctx),
        _imap_pop3_tls(ctx),
    )
    checks = [
        _mode(ctx),
        password,
        _secret_key(ctx),
        _admin_2fa(admins),
        *_tls_checks(ctx),
        relay,
        tls_first,
        *_domain_checks(ctx, active),
        dkim,
        _database(ctx),
        _event_bus(ctx),
        delivery,
    ]
    host = ctx.settings.effective_hostname
    verified = sum(
        domains.flags(domains.record_states(d, host))["all_verified"] for d in all_domains
    )
    production = ctx.settings.is_production
    return ProductionStatusResponse(
        mode=ctx.settings.mode.value,
        tls_configured=ctx.services.tls is not None and ctx.services.tls.info().is_uploaded,
        domains_configured=len(all_domains),
        domains_verified=verified,
        smtp_relay_refused=relay.passed,
        imap_pop3_tls_required=tls_first.passed,
        postfix_strict_mode=relay.passed,
        dovecot_tls_required=tls_first.passed,
        secure_cookies=production,
        acme_configured=False,
        features=FeatureFlags(inject=True, messaging_sandbox=False, httpbin=False),
        ready=not any(check.status is CheckStatus.FAIL for check in checks),
        checks=checks,
    )
