"""Tortoise ORM models: the tables of the server.

Only ``store/`` imports this module. Identifiers that leave the server are
UUIDs rendered as strings, so the REST contract's string ``id`` fields hold.
"""

from __future__ import annotations

from tortoise import fields

from mailcue_server.store.model_base import StoreModel


class User(StoreModel):
    """A person who logs in to the API and web UI."""

    id = fields.UUIDField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    email = fields.CharField(max_length=320)
    password_hash = fields.CharField(max_length=255)
    is_admin = fields.BooleanField(default=False)
    is_active = fields.BooleanField(default=True)
    max_mailboxes = fields.IntField(default=5)
    # Encrypted with a key derived from the server secret (store.crypto).
    totp_secret: str | None = fields.TextField(null=True)
    totp_enabled = fields.BooleanField(default=False)
    # The RFC 6238 time step of the last code accepted: each code works once.
    totp_last_step: int | None = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "users"


class SpentLoginStep(StoreModel):
    """A 2FA step token (``temp_token``) that finished a login: each works once.

    Kept until the token would have expired anyway; in the database, so a token
    spent on one node is refused by every node.
    """

    jti = fields.CharField(max_length=64, primary_key=True)
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "spent_login_steps"


class AuthSession(StoreModel):
    """One login: the family of its rotating refresh tokens and its access tokens."""

    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "mailcue.User", related_name="sessions", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)
    revoked_reason = fields.CharField(max_length=64, null=True)
    user_agent = fields.CharField(max_length=255, default="")
    client_ip = fields.CharField(max_length=64, default="")

    class Meta:
        table = "auth_sessions"


class RefreshToken(StoreModel):
    """One refresh token of a session. Only its SHA-256 is stored, and each works once."""

    id = fields.BigIntField(primary_key=True)
    session: fields.ForeignKeyRelation[AuthSession] = fields.ForeignKeyField(
        "mailcue.AuthSession", related_name="refresh_tokens", on_delete=fields.CASCADE
    )
    token_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "refresh_tokens"


class ApiKey(StoreModel):
    """A long-lived ``mc_...`` credential with scopes and a mailbox allow-list."""

    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "mailcue.User", related_name="api_keys", on_delete=fields.CASCADE
    )
    name = fields.CharField(max_length=128)
    prefix = fields.CharField(max_length=16)
    key_hash = fields.CharField(max_length=64, unique=True)
    scopes: list[str] = fields.JSONField(default=list)
    allowed_mailboxes: list[str] | None = fields.JSONField(null=True)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_keys"


class Setting(StoreModel):
    """A server-wide setting changed at run time (JSON value by key)."""

    key = fields.CharField(max_length=128, primary_key=True)
    value: object = fields.JSONField()
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "settings"
