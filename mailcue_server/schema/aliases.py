"""Root fields for aliases (admin only)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from mailcue_server.resolvers import aliases
from mailcue_server.schema.auth import DoneResult
from mailcue_server.schema.context import Info
from mailcue_server.schema.errors import attempt, attempt_done, query
from mailcue_server.schema.types.aliases import (
    AliasCreateRequest,
    AliasListResponse,
    AliasResponse,
    AliasUpdateRequest,
)
from mailcue_server.schema.types.common import OperationError

AliasResult = Annotated[AliasResponse | OperationError, strawberry.union("AliasResult")]


@strawberry.type
class AliasQuery:
    @strawberry.field(description="All aliases. Admin only.")
    async def aliases(self, info: Info) -> AliasListResponse:
        return await query(aliases.list_aliases(info.context.ctx))

    @strawberry.field(description="One alias by id. Admin only.")
    async def alias(self, info: Info, id: int) -> AliasResponse:
        return await query(aliases.get_alias(info.context.ctx, id))


@strawberry.type
class AliasMutation:
    @strawberry.mutation(description="Create an alias; a loop is refused (CONFLICT).")
    async def create_alias(self, info: Info, input: AliasCreateRequest) -> AliasResult:
        return await attempt(aliases.create_alias(info.context.ctx, input))

    @strawberry.mutation(description="Change an alias's destinations or enabled flag.")
    async def update_alias(self, info: Info, id: int, input: AliasUpdateRequest) -> AliasResult:
        return await attempt(aliases.update_alias(info.context.ctx, id, input))

    @strawberry.mutation
    async def delete_alias(self, info: Info, id: int) -> DoneResult:
        return await attempt_done(aliases.delete_alias(info.context.ctx, id), "Alias deleted")
