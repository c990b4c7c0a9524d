"""Aliases (admin only): list, read, create, change, delete.

The rules (catch-alls, precedence, loop refusal) live in ``store/aliases.py``
beside the expansion that SMTP delivery applies, so what the API accepts is
exactly what delivery does.
"""

from __future__ import annotations

from mailcue_server.errors import Invalid
from mailcue_server.resolvers.context import Context
from mailcue_server.schema.types.aliases import (
    AliasCreateRequest,
    AliasListResponse,
    AliasResponse,
    AliasUpdateRequest,
)
from mailcue_server.store import aliases, domains
from mailcue_server.store.domain_models import Alias

READ = "alias:read"
WRITE = "alias:write"


def _view(alias: Alias) -> AliasResponse:
    return AliasResponse(
        id=alias.id,
        source_address=alias.source,
        destination_address=", ".join(alias.destinations),
        destinations=list(alias.destinations),
        domain=alias.domain,
        is_catchall=alias.is_catchall,
        enabled=alias.enabled,
        created_at=alias.created_at,
        updated_at=alias.updated_at,
    )


async def list_aliases(ctx: Context) -> AliasListResponse:
    ctx.require_principal().require_admin(READ)
    found = [_view(alias) for alias in await aliases.list_aliases()]
    return AliasListResponse(aliases=found, total=len(found))


async def get_alias(ctx: Context, alias_id: int) -> AliasResponse:
    ctx.require_principal().require_admin(READ)
    return _view(await aliases.get_alias(alias_id))


async def _check_domain(ctx: Context, source: str) -> None:
    """Production mode receives only managed domains, so an alias elsewhere could never apply."""
    domain = source.rpartition("@")[2]
    if ctx.settings.is_production and not await domains.is_managed(domain):
        raise Invalid(f"Domain '{domain}' is not managed here; add it first")


async def create_alias(ctx: Context, data: AliasCreateRequest) -> AliasResponse:
    """Raises Conflict (409) for a source that has an alias or a change that would loop."""
    ctx.require_principal().require_admin(WRITE)
    source = aliases.parse_source(data.source_address)
    destinations = aliases.parse_destinations(data.destination_address)
    await _check_domain(ctx, source)
    return _view(await aliases.create_alias(source, destinations, enabled=data.enabled))


async def update_alias(ctx: Context, alias_id: int, data: AliasUpdateRequest) -> AliasResponse:
    ctx.require_principal().require_admin(WRITE)
    alias = await aliases.get_alias(alias_id)
    destinations = (
        None
        if data.destination_address is None
        else aliases.parse_destinations(data.destination_address)
    )
    return _view(
        await aliases.update_alias(alias, destinations=destinations, enabled=data.enabled)
    )


async def delete_alias(ctx: Context, alias_id: int) -> None:
    ctx.require_principal().require_admin(WRITE)
    await aliases.delete_alias(await aliases.get_alias(alias_id))
