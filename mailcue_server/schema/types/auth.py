"""Users, tokens, TOTP and API keys."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import strawberry


@strawberry.type(name="User")
class UserResponse:
    id: str
    username: str
    email: str
    is_admin: bool
    is_active: bool
    created_at: datetime
    totp_enabled: bool = False
    max_mailboxes: int = 5


@strawberry.type(name="UserList")
class UserListResponse:
    users: list[UserResponse]
    total: int


@strawberry.type(name="AuthTokens", description="A completed login.")
class TokenResponse:
    access_token: str
    user: UserResponse
    refresh_token: str | None = None
    token_type: str = "bearer"  # noqa: S105 - the OAuth token type, not a secret


@strawberry.type(
    name="TwoFactorRequired",
    description="Password accepted; finish with loginTwoFactor and a TOTP code.",
)
class LoginStepResponse:
    temp_token: str
    requires_2fa: bool = True


@strawberry.type(name="TotpSetup")
class TOTPSetupResponse:
    secret: str
    qr_code: str = strawberry.field(description="PNG image of the otpauth URI as a data URI.")
    provisioning_uri: str


@strawberry.type(name="ApiKey")
class APIKeyResponse:
    id: str
    name: str
    prefix: str
    created_at: datetime
    is_active: bool
    last_used_at: datetime | None = None
    # dataclasses.field: strawberry.field would hide the list type from pydantic.
    scopes: list[str] = dataclasses.field(default_factory=lambda: ["*"])
    allowed_mailboxes: list[str] | None = None


@strawberry.type(name="CreatedApiKey", description="A new key; `key` is shown this once only.")
class APIKeyCreatedResponse(APIKeyResponse):
    key: str = ""


@strawberry.type(name="Scope")
class ScopeInfo:
    value: str
    group: str
    label: str
    description: str
    admin_only: bool


@strawberry.type(name="ScopeCatalog")
class ScopeCatalogResponse:
    scopes: list[ScopeInfo]


@strawberry.input(name="LoginInput")
class LoginRequest:
    username: str
    password: str


@strawberry.input(name="TwoFactorInput")
class TwoFactorVerifyRequest:
    code: str
    temp_token: str


@strawberry.input(name="RefreshInput")
class RefreshRequest:
    refresh_token: str


@strawberry.input(name="RegisterInput")
class RegisterRequest:
    username: str
    email: str
    password: str
    is_admin: bool = False
    max_mailboxes: int = 5


@strawberry.input(name="ChangePasswordInput")
class ChangePasswordRequest:
    current_password: str
    new_password: str


@strawberry.input(name="AdminResetPasswordInput")
class AdminResetPasswordRequest:
    username: str
    new_password: str


@strawberry.input(name="UserUpdateInput")
class UserUpdateRequest:
    max_mailboxes: int | None = None
    is_active: bool | None = None
    is_admin: bool | None = None


@strawberry.input(name="TotpConfirmInput")
class TOTPConfirmRequest:
    code: str


@strawberry.input(
    name="TotpDisableInput",
    description="Either a current TOTP code or the account password is enough; "
    "send the other as an empty string.",
)
class TOTPDisableRequest:
    password: str
    code: str


@strawberry.input(name="ApiKeyCreateInput")
class APIKeyCreateRequest:
    name: str
    scopes: list[str] | None = None
    allowed_mailboxes: list[str] | None = None


@strawberry.input(name="ApiKeyUpdateInput", description="Only the fields given are changed.")
class APIKeyUpdateRequest:
    name: str | None = None
    scopes: list[str] | None = None
    allowed_mailboxes: list[str] | None = None
    is_active: bool | None = None
