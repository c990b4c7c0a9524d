"""/api/v1/health and other public server facts."""

from fastapi import APIRouter

from mailcue_server.resolvers import system
from mailcue_server.rest_compat.deps import PublicCtx
from mailcue_server.schema.types.common import HealthResponse

router = APIRouter(tags=["Health"])


@router.get("/health", response_model=HealthResponse)
async def health(ctx: PublicCtx) -> HealthResponse:
    """Lightweight health probe for load balancers and container checks."""
    return await system.health(ctx)
