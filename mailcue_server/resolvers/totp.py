"""TOTP two-factor authentication (RFC 6238) with pyotp.

The seed is sealed with a key derived from the server secret before it is
stored. Setup stores a fresh seed but leaves 2FA off until a code from the
authenticator app confirms it. Each code is accepted once: confirming,
disabling and finishing a login all claim its time step (``store.two_factor``).
Every call here needs a session token or a key
granted ``account:security`` (see ``Principal.require_account_security``).
"""

from __future__ import annotations

import base64
import hmac
import io
from datetime import timedelta

import pyotp
import segno

from mailcue_server.errors import Invalid
from mailcue_server.resolvers.context import Context
from mailcue_server.schema.types.auth import (
    TOTPConfirmRequest,
    TOTPDisableRequest,
    TOTPSetupResponse,
)
from mailcue_server.store import two_factor, users
from mailcue_server.store.credentials import verify_password
from mailcue_server.store.models import User

ISSUER = "MailCue"


def matching_step(ctx: Context, user: User, code: str) -> int | None:
    """The RFC 6238 time step ``code`` belongs to, if it is valid now (one step of
    clock drift either way) and later than the last code this user had accepted.

    The caller still has to claim the step (``store.two_factor``), which is
    what makes a code work once even when two requests race.
    """
    if not user.totp_secret:
        return None
    try:
        totp = pyotp.TOTP(ctx.services.totp_box.open(user.totp_secret))
    except ValueError:
        return None
    given = code.strip()
    now = ctx.now()
    for drift in (1, 0, -1):
        moment = now + timedelta(seconds=drift * totp.interval)
        if hmac.compare_digest(totp.at(moment), given):
            step = totp.timecode(moment)
            last = user.totp_last_step
            return step if last is None or step > last else None
    return None


async def _claim(ctx: Context, user: User, code: str) -> bool:
    """Accept ``code`` once: a valid code whose time step nobody used yet."""
    step = matching_step(ctx, user, code)
    return step is not None and await two_factor.claim_totp_step(user.id, step)


async def _caller(ctx: Context) -> User:
    principal = ctx.require_principal()
    principal.require_account_security()
    return await users.get(principal.user_id)


def _qr_data_uri(uri: str) -> str:
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(buffer, kind="png", scale=5, border=2)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


async def setup(ctx: Context) -> TOTPSetupResponse:
    """Generate a new seed for the caller; 2FA stays off until confirmed."""
    user = await _caller(ctx)
    if user.totp_enabled:
        raise Invalid("Two-factor authentication is already enabled; disable it first")
    secret = pyotp.random_base32()
    user.totp_secret = ctx.services.totp_box.seal(secret)
    user.totp_last_step = None  # a new seed: no code of it was used yet
    await users.save(user, "totp_secret", "totp_last_step")
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)
    return TOTPSetupResponse(secret=secret, qr_code=_qr_data_uri(uri), provisioning_uri=uri)


async def confirm(ctx: Context, data: TOTPConfirmRequest) -> str:
    user = await _caller(ctx)
    if not user.totp_secret:
        raise Invalid("Call /auth/totp/setup first")
    if not await _claim(ctx, user, data.code):
        raise Invalid("Invalid two-factor code (each code works once)")
    user.totp_enabled = True
    await users.save(user, "totp_enabled")
    return "Two-factor authentication enabled"


async def disable(ctx: Context, data: TOTPDisableRequest) -> str:
    """Turn 2FA off; a valid current code or the account password is needed."""
    user = await _caller(ctx)
    if not user.totp_enabled:
        raise Invalid("Two-factor authentication is not enabled")
    by_code = bool(data.code) and await _claim(ctx, user, data.code)
    by_password = bool(data.password) and await verify_password(user.password_hash, data.password)
    if not (by_code or by_password):
        raise Invalid("A valid two-factor code or the account password is required")
    user.totp_enabled = False
    user.totp_secret = None
    await users.save(user, "totp_enabled", "totp_secret")
    return "Two-factor authentication disabled"
