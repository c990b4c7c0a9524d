"""/api/v1/auth: login, 2FA, refresh, logout, profile, password, TOTP and users."""

from typing import Annotated

from fastapi import APIRouter, Body, Cookie, Header, Request, Response, status

from mailcue_server.resolvers import auth, refresh_cookie, totp, users
from mailcue_server.resolvers.context import Context
from mailcue_server.resolvers.refresh_cookie import REFRESH_COOKIE, REFRESH_HEADER
from mailcue_server.rest_compat.deps import Ctx, LenientCtx, PublicCtx
from mailcue_server.rest_compat.error_responses import errors
from mailcue_server.schema.types.auth import (
    AdminResetPasswordRequest,
    ChangePasswordRequest,
    LoginRequest,
    LoginStepResponse,
    RefreshRequest,
    RegisterRequest,
    TokenResponse,
    TOTPConfirmRequest,
    TOTPDisableRequest,
    TOTPSetupResponse,
    TwoFactorVerifyRequest,
    UserListResponse,
    UserResponse,
    UserUpdateRequest,
)

router = APIRouter(prefix="/auth", tags=["Authentication"])


def _set_refresh_cookie(
    request: Request, ctx: Context, response: Response, tokens: TokenResponse
) -> None:
    if tokens.refresh_token:
        https = request.url.scheme == "https"
        refresh_cookie.cookie_for(ctx, tokens.refresh_token, https=https).set_on(response)


@router.post(
    "/login", response_model=TokenResponse | LoginStepResponse, responses=errors(401, 429)
)
async def login(
    ctx: PublicCtx, body: LoginRequest, request: Request, response: Response
) -> TokenResponse | LoginStepResponse:
    """Username + password: tokens, or a step token when TOTP is enabled.

    Tokens come in the body, and the refresh token also as an HttpOnly cookie
    sent only to ``/auth/refresh`` (SameSite=Strict; Secure over HTTPS)."""
    result = await auth.login(ctx, body)
    if isinstance(result, TokenResponse):
        _set_refresh_cookie(request, ctx, response, result)
    return result


@router.post("/login/2fa", response_model=TokenResponse, responses=errors(401, 429))
async def login_2fa(
    ctx: PublicCtx, body: TwoFactorVerifyRequest, request: Request, response: Response
) -> TokenResponse:
    """Finish a login with the step token and a TOTP code; each works once."""
    result = await auth.login_two_factor(ctx, body)
    _set_refresh_cookie(request, ctx, response, result)
    return result


@router.post("/refresh", response_model=TokenResponse, responses=errors(401))
async def refresh(
    ctx: PublicCtx,
    request: Request,
    response: Response,
    body: Annotated[RefreshRequest | None, Body()] = None,
    cookie: Annotated[str | None, Cookie(alias=REFRESH_COOKIE)] = None,
    refresh_header: Annotated[str | None, Header(alias=REFRESH_HEADER)] = None,
) -> TokenResponse:
    """Spend a refresh token (body or cookie) for a new pair; each works once.

    A token taken from the cookie also needs the header ``X-MailCue-Refresh: 1``
    (a cross-site form cannot set it); without it the answer is 401 and the
    token stays unspent."""
    token = refresh_cookie.token_to_spend(
        body.refresh_token if body else None, cookie, refresh_header
    )
    result = await auth.refresh(ctx, token)
    _set_refresh_cookie(request, ctx, response, result)
    return result


@router.post("/logout", response_model=dict[str, str])
async def logout(
    ctx: LenientCtx,
    request: Request,
    response: Response,
    cookie: Annotated[str | None, Cookie(alias=REFRESH_COOKIE)] = None,
) -> dict[str, str]:
    """Revoke the session's tokens and clear the refresh cookie."""
    message = await auth.logout(ctx, cookie)
    refresh_cookie.cleared(https=request.url.scheme == "https").set_on(response)
    return {"message": message}


@router.get("/me", response_model=UserResponse)
async def me(ctx: Ctx) -> UserResponse:
    return await auth.me(ctx)


@router.post(
    "/register",
    response_model=UserResponse,
    status_code=status.HTTP_201_CREATED,
    responses=errors(409),
)
async def register(ctx: Ctx, body: RegisterRequest) -> UserResponse:
    """Create a user. **Admin only.**"""
    return await users.register(ctx, body)


@router.put("/password", response_model=dict[str, str])
async def change_password(ctx: Ctx, body: ChangePasswordRequest) -> dict[str, str]:
    """Change your password; your other sessions are signed out.

    Needs a session token or a key with ``account:security``; the new password
    must pass the password policy (not common, trivial or your own name)."""
    return {"message": await auth.change_password(ctx, body)}


@router.put("/admin/reset-password", response_model=dict[str, str], responses=errors(404))
async def admin_reset_password(ctx: Ctx, body: AdminResetPasswordRequest) -> dict[str, str]:
    """Set a user's password without the old one. **Admin only.**"""
    return {"message": await users.admin_reset_password(ctx, body)}


@router.post("/totp/setup", response_model=TOTPSetupResponse)
async def totp_setup(ctx: Ctx) -> TOTPSetupResponse:
    """New TOTP secret, otpauth URI and QR code; 2FA is on only after confirm.

    Needs a session token or a key with ``account:security``."""
    return await totp.setup(ctx)


@router.post("/totp/confirm", response_model=dict[str, str])
async def totp_confirm(ctx: Ctx, body: TOTPConfirmRequest) -> dict[str, str]:
    """Turn 2FA on with a current code (each code works once).

    Needs a session token or a key with ``account:security``."""
    return {"message": await totp.confirm(ctx, body)}


@router.post("/totp/disable", response_model=dict[str, str])
async def totp_disable(ctx: Ctx, body: TOTPDisableRequest) -> dict[str, str]:
    """Turn 2FA off with a current code or the account password.

    Needs a session token or a key with ``account:security``."""
    return {"message": await totp.disable(ctx, body)}


@router.get("/users", response_model=UserListResponse)
async def list_users(ctx: Ctx) -> UserListResponse:
    """All users. **Admin only.**"""
    return await users.list_users(ctx)


@router.put("/users/{user_id}", response_model=UserResponse)
async def update_user(ctx: Ctx, user_id: str, body: UserUpdateRequest) -> UserResponse:
    """Change a user's quota, admin or active flags. **Admin only.**"""
    return await users.update_user(ctx, user_id, body)


@router.delete("/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def deactivate_user(ctx: Ctx, user_id: str) -> None:
    """Deactivate a user and end their sessions. **Admin only.**"""
    await users.deactivate_user(ctx, user_id)
