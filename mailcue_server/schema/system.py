"""Root fields for server-wide facts."""

from __future__ import annotations

import strawberry

from mailcue_server.resolvers import system
from mailcue_server.schema.context import Info
from mailcue_server.schema.errors import query
from mailcue_server.schema.types.common import HealthResponse


@strawberry.type
class SystemQuery:
    @strawberry.field(description="Liveness; needs no credentials.")
    async def health(self, info: Info) -> HealthResponse:
        return await query(system.health(info.context.ctx))
