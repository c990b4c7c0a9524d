"""The body of ``GET /api/v1/health``, kept light: it is answered before the API is built."""

from __future__ import annotations

from mailcue_server import __version__
from mailcue_server.config import Settings

HEALTHY = "healthy"
UNHEALTHY = "unhealthy"


def health_fields(settings: Settings, status: str = HEALTHY) -> dict[str, str]:
    """What the health probe reports: the status, this build's version and the mode."""
    return {"status": status, "version": __version__, "mode": settings.mode.value}
