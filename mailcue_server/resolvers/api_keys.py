"""API keys: create (shown once), list, change in place, revoke, and the scope catalog.

A key made with another key can never hold more than its maker: its scopes
and mailbox allow-list must fit inside the maker's.
"""

from __future__ import annotations

import secrets

from mailcue_server.errors import Forbidden, Invalid, NotFound
from mailcue_server.resolvers.context import Context, Principal
from mailcue_server.resolvers.principal import API_KEY_PREFIX
from mailcue_server.resolvers.scopes import BY_VALUE, CATALOG, FULL_ACCESS
from mailcue_server.schema.types.auth import (
    APIKeyCreatedResponse,
    APIKeyCreateRequest,
    APIKeyResponse,
    APIKeyUpdateRequest,
    ScopeCatalogResponse,
    ScopeInfo,
)
from mailcue_server.store import api_keys, users
from mailcue_server.store.models import ApiKey

MANAGE = "apikey:manage"
_PREFIX_LENGTH = 11  # "mc_" + 8 characters: enough to tell keys apart in a list


def _view(key: ApiKey) -> APIKeyResponse:
    return APIKeyResponse(
        id=str(key.id),
        name=key.name,
        prefix=key.prefix,
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        is_active=key.is_active,
        scopes=list(key.scopes),
        allowed_mailboxes=key.allowed_mailboxes,
    )


def _check_name(name: str) -> str:
    clean = name.strip()
    if not 1 <= len(clean) <= 128:
        raise Invalid("Name must be 1-128 characters")
    return clean


def _check_scopes(principal: Principal, requested: list[str] | None) -> list[str]:
    """Validate scopes against the catalog and against what the caller holds."""
    wanted = sorted(set(requested or []))
    if not wanted or FULL_ACCESS in wanted:
        if principal.scopes is not None and FULL_ACCESS not in principal.scopes:
            return sorted(principal.scopes)  # a limited key can only pass on its own scopes
        return [FULL_ACCESS]
    unknown = [s for s in wanted if s not in BY_VALUE]
    if unknown:
        raise Invalid(f"Unknown scope(s): {', '.join(unknown)}")
    for scope in wanted:
        if BY_VALUE[scope].admin_only and not principal.is_admin:
            raise Forbidden(f"Scope '{scope}' is for administrators only")
        if not principal.has_scope(scope):
            raise Forbidden(f"Cannot grant '{scope}': the calling key does not hold it")
    return wanted


def _check_mailboxes(principal: Principal, requested: list[str] | None) -> list[str] | None:
    """``None`` or empty means every mailbox the owner may read."""
    wanted = sorted({a.strip().lower() for a in requested or [] if a.strip()})
    if principal.allowed_mailboxes is not None:
        if not wanted:
            return sorted(principal.allowed_mailboxes)
        outside = [a for a in wanted if a not in principal.allowed_mailboxes]
        if outside:
            raise Forbidden(
                f"Cannot grant mailbox(es) the calling key lacks: {', '.join(outside)}"
            )
    if any("@" not in a for a in wanted):
        raise Invalid("allowed_mailboxes must be email addresses")
    return wanted or None


async def create_api_key(ctx: Context, data: APIKeyCreateRequest) -> APIKeyCreatedResponse:
    principal = ctx.require_principal()
    principal.require_scope(MANAGE)
    raw_key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    key = await api_keys.create(
        await users.get(principal.user_id),
        name=_check_name(data.name),
        raw_key=raw_key,
        prefix=raw_key[:_PREFIX_LENGTH],
        scopes=_check_scopes(principal, data.scopes),
        allowed_mailboxes=_check_mailboxes(principal, data.allowed_mailboxes),
    )
    view = _view(key)
    return APIKeyCreatedResponse(**{**view.__dict__, "key": raw_key})


async def list_api_keys(ctx: Context) -> list[APIKeyResponse]:
    principal = ctx.require_principal()
    principal.require_scope(MANAGE)
    return [_view(k) for k in await api_keys.list_for_user(principal.user_id)]


async def _own_key(principal: Principal, key_id: str) -> ApiKey:
    try:
        return await api_keys.get_for_user(key_id, principal.user_id)
    except (ValueError, NotFound):  # a malformed id is just as unknown
        raise NotFound("API key not found") from None


async def update_api_key(ctx: Context, key_id: str, data: APIKeyUpdateRequest) -> APIKeyResponse:
    """Change name, scopes, allow-list or active flag; the secret stays the same."""
    principal = ctx.require_principal()
    principal.require_scope(MANAGE)
    key = await _own_key(principal, key_id)
    changed: list[str] = []
    if data.name is not None:
        key.name = _check_name(data.name)
        changed.append("name")
    if data.scopes is not None:
        key.scopes = _check_scopes(principal, data.scopes)
        changed.append("scopes")
    if data.allowed_mailboxes is not None:
        key.allowed_mailboxes = _check_mailboxes(principal, data.allowed_mailboxes)
        changed.append("allowed_mailboxes")
    if data.is_active is not None:
        key.is_active = data.is_active
        changed.append("is_active")
    if changed:
        await api_keys.save(key, *changed)
    return _view(key)


async def revoke_api_key(ctx: Context, key_id: str) -> None:
    principal = ctx.require_principal()
    principal.require_scope(MANAGE)
    await api_keys.delete(await _own_key(principal, key_id))


async def scope_catalog(ctx: Context) -> ScopeCatalogResponse:
    ctx.require_principal()
    return ScopeCatalogResponse(
        scopes=[
            ScopeInfo(
                value=s.value,
                group=s.group,
                label=s.label,
                description=s.description,
                admin_only=s.admin_only,
            )
            for s in CATALOG
        ]
    )
