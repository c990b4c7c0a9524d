"""Server-wide read-only facts: health and version."""

from __future__ import annotations

from mailcue_server import __version__
from mailcue_server.resolvers.context import Context
from mailcue_server.schema.types.common import HealthResponse


async def health(ctx: Context) -> HealthResponse:
    """Liveness for load balancers and the SDK; needs no credentials."""
    return HealthResponse(status="healthy", version=__version__, mode=ctx.settings.mode.value)
