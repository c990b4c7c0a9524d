"""/api/v1/aliases: list, create, read, change and delete aliases (admin only)."""

from typing import Annotated

from fastapi import APIRouter, Path, status

from mailcue_server.resolvers import aliases
from mailcue_server.rest_compat.deps import Ctx
from mailcue_server.rest_compat.error_responses import errors
from mailcue_server.schema.types.aliases import (
    AliasCreateRequest,
    AliasListResponse,
    AliasResponse,
    AliasUpdateRequest,
)

router = APIRouter(prefix="/aliases", tags=["Aliases"])

# The ids are 32-bit integers in the database; a larger number is simply unknown.
AliasId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("", response_model=AliasListResponse)
async def list_all_aliases(ctx: Ctx) -> AliasListResponse:
    """List all email aliases. **Admin only.**"""
    return await aliases.list_aliases(ctx)


@router.post(
    "", response_model=AliasResponse, status_code=status.HTTP_201_CREATED, responses=errors(409)
)
async def create_new_alias(ctx: Ctx, body: AliasCreateRequest) -> AliasResponse:
    """Create an alias: 409 if the source has one already or if it would make a loop."""
    return await aliases.create_alias(ctx, body)


@router.get("/{alias_id}", response_model=AliasResponse)
async def get_one_alias(ctx: Ctx, alias_id: AliasId) -> AliasResponse:
    """Get a single alias by ID. **Admin only.**"""
    return await aliases.get_alias(ctx, alias_id)


@router.put("/{alias_id}", response_model=AliasResponse, responses=errors(409))
async def update_existing_alias(
    ctx: Ctx, alias_id: AliasId, body: AliasUpdateRequest
) -> AliasResponse:
    """Change an alias's destinations or enabled flag. **Admin only.**"""
    return await aliases.update_alias(ctx, alias_id, body)


@router.delete("/{alias_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_existing_alias(ctx: Ctx, alias_id: AliasId) -> None:
    """Delete an alias. **Admin only.**"""
    await aliases.delete_alias(ctx, alias_id)
