"""Login, 2FA, token refresh and logout, the current user and their password.

Refresh tokens rotate: each works once and a reused one revokes its whole
session, except the one rotated last presented again within
``MAILCUE_REFRESH_REUSE_GRACE_SECONDS`` (see ``store.auth_sessions``).
Failed logins are throttled per client address and username by the limiter
every protocol shares (``store.login_limiter``), and an unknown
user costs the same time as a wrong password, so neither answers nor timing
reveal which usernames exist.
"""

from __future__ import annotations

from datetime import timedelta

from mailcue_server.errors import Invalid, NotFound, Unauthenticated
from mailcue_server.resolvers import totp
from mailcue_server.resolvers.context import Context
from mailcue_server.resolvers.users import check_new_password, user_view
from mailcue_server.schema.types.auth import (
    ChangePasswordRequest,
    LoginRequest,
    LoginStepResponse,
    TokenResponse,
    TwoFactorVerifyRequest,
    UserResponse,
)
from mailcue_server.store import auth_sessions, two_factor, users
from mailcue_server.store.credentials import hash_password, verify_password
from mailcue_server.store.models import AuthSession, User

BAD_CREDENTIALS = "Incorrect username or password"
STEP_EXPIRED = "Invalid or expired login step; log in again"


async def login(ctx: Context, data: LoginRequest) -> TokenResponse | LoginStepResponse:
    """Check a username and password; issue tokens or ask for the TOTP code.

    Raises:
        RateLimited: too many recent failures for this client and username.
        Unauthenticated: wrong password, unknown or deactivated user (one message).
    """
    user = await ctx.services.limiter.attempt(
        ctx.client_ip,
        data.username[: users.USERNAME_MAX],
        data.password,
        lambda: users.check_password(data.username, data.password),
    )
    if user is None:
        raise Unauthenticated(BAD_CREDENTIALS)
    if user.totp_enabled:
        return LoginStepResponse(
            temp_token=ctx.services.tokens.two_factor_token(user.id, ctx.now())
        )
    return await _issue_session(ctx, user)


async def login_two_factor(ctx: Context, data: TwoFactorVerifyRequest) -> TokenResponse:
    """Finish a login with the step token and a current TOTP code; both work once."""
    step_token = ctx.services.tokens.read_two_factor(data.temp_token)
    if step_token is None:
        raise Unauthenticated(STEP_EXPIRED)

    async def check() -> User | None:
        user = await users.get_active(step_token.user_id)
        step = totp.matching_step(ctx, user, data.code) if user is not None else None
        if user is None or step is None:
            return None
        spent = await two_factor.finish_login_step(
            user.id,
            jti=step_token.jti,
            token_expires=step_token.expires_at,
            step=step,
            now=ctx.now(),
        )
        return user if spent else None

    user = await ctx.services.limiter.attempt(
        ctx.client_ip, f"2fa:{step_token.user_id}", data.code, check
    )
    if user is None:
        raise Unauthenticated(
            "Invalid two-factor code, or this code or login step was already used"
        )
    return await _issue_session(ctx, user)


async def _issue_session(ctx: Context, user: User) -> TokenResponse:
    session = await auth_sessions.start(user, user_agent=ctx.user_agent, client_ip=ctx.client_ip)
    return await _issue_tokens(ctx, user, session)


async def _issue_tokens(ctx: Context, user: User, session: AuthSession) -> TokenResponse:
    now = ctx.now()
    refresh = ctx.services.tokens.new_refresh_token()
    expires = auth_sessions.expiry(now, ctx.settings.refresh_token_expire_days)
    await auth_sessions.add_refresh_token(session, refresh, expires)
    return TokenResponse(
        access_token=ctx.services.tokens.access_token(user.id, session.id, now),
        refresh_token=refresh,
        user=user_view(user),
    )


async def refresh(ctx: Context, refresh_token: str | None) -> TokenResponse:
    """Spend a refresh token for a new access + refresh pair.

    Raises:
        Unauthenticated: missing, unknown, expired, revoked or reused token.
    """
    if not refresh_token:
        raise Unauthenticated("No refresh token")
    try:
        session = await auth_sessions.rotate(
            refresh_token,
            now=ctx.now(),
            grace=timedelta(seconds=ctx.settings.refresh_reuse_grace_seconds),
        )
    except auth_sessions.RefreshRejected:
        raise Unauthenticated("Invalid or expired refresh token") from None
    user = await users.get_active(session.user_id)  # type: ignore[attr-defined]
    if user is None:
        raise Unauthenticated("Invalid or expired refresh token")
    return await _issue_tokens(ctx, user, session)


async def logout(ctx: Context, refresh_token: str | None) -> str:
    """Revoke the caller's session: its refresh tokens and access tokens die now.

    The session is found from the access token, or else from the refresh token
    (the web UI's cookie). Logging out twice is harmless.
    """
    now = ctx.now()
    if ctx.principal is not None and ctx.principal.session_id is not None:
        await auth_sessions.revoke(ctx.principal.session_id, now=now, reason="logout")
    elif refresh_token:
        await auth_sessions.revoke_by_refresh_token(refresh_token, now=now)
    return "Logged out"


async def me(ctx: Context) -> UserResponse:
    principal = ctx.require_principal()
    try:
        return user_view(await users.get(principal.user_id))
    except NotFound:
        raise Unauthenticated("Not authenticated") from None


async def change_password(ctx: Context, data: ChangePasswordRequest) -> str:
    """Change the caller's password and revoke their other sessions."""
    principal = ctx.require_principal()
    principal.require_account_security()
    user = await users.get(principal.user_id)
    if not await verify_password(user.password_hash, data.current_password):
        raise Invalid("Current password is incorrect")
    check_new_password(data.new_password, user.username, user.email)
    user.password_hash = await hash_password(data.new_password)
    await users.save(user, "password_hash")
    await auth_sessions.revoke_all_for_user(
        user.id, now=ctx.now(), reason="password changed", keep=principal.session_id
    )
    return "Password changed"
