"""Root fields for login, tokens, the current user, TOTP, users and API keys."""

from __future__ import annotations

from typing import Annotated, TypeVar

import strawberry

from mailcue_server.resolvers import api_keys, auth, refresh_cookie, totp, users
from mailcue_server.schema.context import Info
from mailcue_server.schema.errors import attempt, attempt_done, query
from mailcue_server.schema.types.auth import (
    AdminResetPasswordRequest,
    APIKeyCreatedResponse,
    APIKeyCreateRequest,
    APIKeyResponse,
    APIKeyUpdateRequest,
    ChangePasswordRequest,
    LoginRequest,
    LoginStepResponse,
    RegisterRequest,
    ScopeCatalogResponse,
    TokenResponse,
    TOTPConfirmRequest,
    TOTPDisableRequest,
    TOTPSetupResponse,
    TwoFactorVerifyRequest,
    UserListResponse,
    UserResponse,
    UserUpdateRequest,
)
from mailcue_server.schema.types.common import Done, OperationError

T = TypeVar("T")

LoginResult = Annotated[
    TokenResponse | LoginStepResponse | OperationError, strawberry.union("LoginResult")
]
TokensResult = Annotated[TokenResponse | OperationError, strawberry.union("TokensResult")]
DoneResult = Annotated[Done | OperationError, strawberry.union("DoneResult")]
UserResult = Annotated[UserResponse | OperationError, strawberry.union("UserResult")]
SetupTotpResult = Annotated[
    TOTPSetupResponse | OperationError, strawberry.union("SetupTotpResult")
]
CreateApiKeyResult = Annotated[
    APIKeyCreatedResponse | OperationError, strawberry.union("CreateApiKeyResult")
]
UpdateApiKeyResult = Annotated[
    APIKeyResponse | OperationError, strawberry.union("UpdateApiKeyResult")
]

_ACCOUNT_SECURITY = "Needs a session token or an API key with account:security."
_COOKIE = (
    " Over HTTP the refresh token is also set as the HttpOnly cookie that "
    "POST /api/v1/auth/refresh takes (with the header X-MailCue-Refresh: 1)."
)


def _over_https(info: Info) -> bool:
    request = info.context.request
    return request is not None and request.url.scheme == "https"


def _keep_in_cookie(info: Info, result: T) -> T:
    """Set the browser's refresh cookie from issued tokens, as the REST routes do."""
    response = info.context.response
    if isinstance(result, TokenResponse) and result.refresh_token and response is not None:
        cookie = refresh_cookie.cookie_for(
            info.context.ctx, result.refresh_token, https=_over_https(info)
        )
        cookie.set_on(response)
    return result


@strawberry.type
class AuthQuery:
    @strawberry.field(description="The caller's own profile.")
    async def me(self, info: Info) -> UserResponse:
        return await query(auth.me(info.context.ctx))

    @strawberry.field(description="The caller's API keys (never the secret values).")
    async def api_keys(self, info: Info) -> list[APIKeyResponse]:
        return await query(api_keys.list_api_keys(info.context.ctx))

    @strawberry.field(description="Every scope an API key can hold.")
    async def api_key_scopes(self, info: Info) -> ScopeCatalogResponse:
        return await query(api_keys.scope_catalog(info.context.ctx))

    @strawberry.field(description="All users. Admin only.")
    async def users(self, info: Info) -> UserListResponse:
        return await query(users.list_users(info.context.ctx))


@strawberry.type
class AuthMutation:
    @strawberry.mutation(
        description="Tokens, or a step token when TOTP is on (then loginTwoFactor)." + _COOKIE
    )
    async def login(self, info: Info, input: LoginRequest) -> LoginResult:
        return _keep_in_cookie(info, await attempt(auth.login(info.context.ctx, input)))

    @strawberry.mutation(
        description="Finish a login with the step token and a TOTP code; each works once."
        + _COOKIE
    )
    async def login_two_factor(self, info: Info, input: TwoFactorVerifyRequest) -> TokensResult:
        result = await attempt(auth.login_two_factor(info.context.ctx, input))
        return _keep_in_cookie(info, result)

    @strawberry.mutation(description="Rotate a refresh token; each one works once." + _COOKIE)
    async def refresh_token(self, info: Info, refresh_token: str) -> TokensResult:
        return _keep_in_cookie(info, await attempt(auth.refresh(info.context.ctx, refresh_token)))

    @strawberry.mutation(
        description="Revoke the current session (or the refresh token's); clears the cookie."
    )
    async def logout(self, info: Info, refresh_token: str | None = None) -> DoneResult:
        result = await attempt_done(auth.logout(info.context.ctx, refresh_token))
        if info.context.response is not None:
            refresh_cookie.cleared(https=_over_https(info)).set_on(info.context.response)
        return result

    @strawberry.mutation
    async def register_user(self, info: Info, input: RegisterRequest) -> UserResult:
        return await attempt(users.register(info.context.ctx, input))

    @strawberry.mutation
    async def update_user(self, info: Info, id: str, input: UserUpdateRequest) -> UserResult:
        return await attempt(users.update_user(info.context.ctx, id, input))

    @strawberry.mutation
    async def reset_user_password(
        self, info: Info, input: AdminResetPasswordRequest
    ) -> DoneResult:
        return await attempt_done(users.admin_reset_password(info.context.ctx, input))

    @strawberry.mutation(description=_ACCOUNT_SECURITY + " Signs your other sessions out.")
    async def change_password(self, info: Info, input: ChangePasswordRequest) -> DoneResult:
        return await attempt_done(auth.change_password(info.context.ctx, input))

    @strawberry.mutation(description=_ACCOUNT_SECURITY + " 2FA is on only after confirmTotp.")
    async def setup_totp(self, info: Info) -> SetupTotpResult:
        return await attempt(totp.setup(info.context.ctx))

    @strawberry.mutation(description=_ACCOUNT_SECURITY + " Each code works once.")
    async def confirm_totp(self, info: Info, input: TOTPConfirmRequest) -> DoneResult:
        return await attempt_done(totp.confirm(info.context.ctx, input))

    @strawberry.mutation(description=_ACCOUNT_SECURITY + " A current code or the password.")
    async def disable_totp(self, info: Info, input: TOTPDisableRequest) -> DoneResult:
        return await attempt_done(totp.disable(info.context.ctx, input))

    @strawberry.mutation
    async def create_api_key(self, info: Info, input: APIKeyCreateRequest) -> CreateApiKeyResult:
        return await attempt(api_keys.create_api_key(info.context.ctx, input))

    @strawberry.mutation
    async def update_api_key(
        self, info: Info, id: str, input: APIKeyUpdateRequest
    ) -> UpdateApiKeyResult:
        return await attempt(api_keys.update_api_key(info.context.ctx, id, input))

    @strawberry.mutation
    async def revoke_api_key(self, info: Info, id: str) -> DoneResult:
        return await attempt_done(api_keys.revoke_api_key(info.context.ctx, id), "API key revoked")
