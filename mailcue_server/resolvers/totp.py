"""TOTP two-factor authentication (RFC 6238) with pyotp.

The seed is sealed with a key derived from the server secret before it is
stored. Setup stores a fresh seed but leaves 2FA off until a code from the
authenticator app confirms it. Every call here needs a session token or a key
granted ``account:security`` (see ``Principal.require_account_security``).
"""

from __future__ import annotations

import base64
import io

import pyotp
import segno

from mailcue_server.errors import Invalid
from mailcue_server.resolvers.context import Context
from mailcue_server.schema.types.auth import (
    TOTPConfirmRequest,
    TOTPDisableRequest,
    TOTPSetupResponse,
)
from mailcue_server.store import users
from mailcue_server.store.credentials import verify_password
from mailcue_server.store.models import User

ISSUER = "MailCue"


def code_matches(ctx: Context, user: User, code: str) -> bool:
    """Whether ``code`` is valid now (one step of clock drift either way)."""
    if not user.totp_secret:
        return False
    try:
        secret = ctx.services.totp_box.open(user.totp_secret)
    except ValueError:
        return False
    return pyotp.TOTP(secret).verify(code.strip(), valid_window=1)


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
    await users.save(user, "totp_secret")
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=ISSUER)
    return TOTPSetupResponse(secret=secret, qr_code=_qr_data_uri(uri), provisioning_uri=uri)


async def confirm(ctx: Context, data: TOTPConfirmRequest) -> str:
    user = await _caller(ctx)
    if not user.totp_secret:
        raise Invalid("Call /auth/totp/setup first")
    if not code_matches(ctx, user, data.code):
        raise Invalid("Invalid two-factor code")
    user.totp_enabled = True
    await users.save(user, "totp_enabled")
    return "Two-factor authentication enabled"


async def disable(ctx: Context, data: TOTPDisableRequest) -> str:
    """Turn 2FA off; a valid current code or the account password is needed."""
    user = await _caller(ctx)
    if not user.totp_enabled:
        raise Invalid("Two-factor authentication is not enabled")
    by_code = bool(data.code) and code_matches(ctx, user, data.code)
    by_password = bool(data.password) and await verify_password(user.password_hash, data.password)
    if not (by_code or by_password):
        raise Invalid("A valid two-factor code or the account password is required")
    user.totp_enabled = False
    user.totp_secret = None
    await users.save(user, "totp_enabled", "totp_secret")
    return "Two-factor authentication disabled"
