"""/api/v1/auth/api-keys: create (shown once), list, change, revoke, scope catalog."""

from fastapi import APIRouter, status

from mailcue_server.resolvers import api_keys
from mailcue_server.rest_compat.deps import Ctx
from mailcue_server.schema.types.auth import (
    APIKeyCreatedResponse,
    APIKeyCreateRequest,
    APIKeyResponse,
    APIKeyUpdateRequest,
    ScopeCatalogResponse,
)

router = APIRouter(prefix="/auth/api-keys", tags=["Authentication"])


@router.get("/scopes", response_model=ScopeCatalogResponse)
async def list_scopes(ctx: Ctx) -> ScopeCatalogResponse:
    """Every permission scope an API key can be granted."""
    return await api_keys.scope_catalog(ctx)


@router.get("", response_model=list[APIKeyResponse])
async def list_keys(ctx: Ctx) -> list[APIKeyResponse]:
    """Your API keys, without their secret values."""
    return await api_keys.list_api_keys(ctx)


@router.post("", response_model=APIKeyCreatedResponse, status_code=status.HTTP_201_CREATED)
async def create_key(ctx: Ctx, body: APIKeyCreateRequest) -> APIKeyCreatedResponse:
    """Generate a key; the raw ``key`` is in this response only."""
    return await api_keys.create_api_key(ctx, body)


@router.patch("/{key_id}", response_model=APIKeyResponse)
async def update_key(ctx: Ctx, key_id: str, body: APIKeyUpdateRequest) -> APIKeyResponse:
    """Change name, scopes, allowed mailboxes or active flag; the secret is kept."""
    return await api_keys.update_api_key(ctx, key_id, body)


@router.delete("/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_key(ctx: Ctx, key_id: str) -> None:
    """Revoke a key permanently."""
    await api_keys.revoke_api_key(ctx, key_id)
