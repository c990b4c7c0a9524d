"""The HTTP application factory: REST compat routes, GraphQL, docs, error mapping."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp

from mailcue_server import __version__
from mailcue_server.api import errors
from mailcue_server.api.body_limits import BodyLimitMiddleware
from mailcue_server.api.graphql import build_graphql_router
from mailcue_server.api.security_headers import TOOL_PAGE, SecurityHeadersMiddleware
from mailcue_server.api.static_ui import UiFallback, page_response
from mailcue_server.api.text_input import TextInputMiddleware
from mailcue_server.resolvers.context import Services
from mailcue_server.rest_compat import mta_sts
from mailcue_server.rest_compat.error_responses import add_error_bodies, document_errors
from mailcue_server.rest_compat.routes import build_router

DESCRIPTION = (
    "Email testing server that also runs as a real mail server. "
    "Authenticate with `Authorization: Bearer <jwt>` (from `/api/v1/auth/login`) "
    "or `X-API-Key: mc_...`. The same operations are available over GraphQL at `/graphql`."
)


class MailcueApp(FastAPI):
    """FastAPI with our security headers outside everything (its own 500 answers included)
    and every error answer in its OpenAPI document."""

    def build_middleware_stack(self) -> ASGIApp:
        return SecurityHeadersMiddleware(super().build_middleware_stack())

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = add_error_bodies(super().openapi())
        return self.openapi_schema


def create_app(services: Services) -> FastAPI:
    """Build the ASGI app around already-built services (no I/O here)."""
    app = MailcueApp(
        title="MailCue API",
        description=DESCRIPTION,
        version=__version__,
        # Swagger UI comes from the web UI's build (below), not from a CDN.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.services = services
    errors.install(app)
    app.add_middleware(TextInputMiddleware)  # inside the body limit, which bounds what it reads
    # The live limit: PUT /system/settings replaces services.settings.
    app.add_middleware(
        BodyLimitMiddleware, max_message_size=lambda: services.settings.max_message_size
    )
    app.include_router(build_router())
    document_errors(mta_sts.router.routes)
    app.include_router(mta_sts.router)  # /.well-known/mta-sts.txt, outside /api/v1
    app.include_router(build_graphql_router(), prefix="/graphql", include_in_schema=False)
    app.add_api_route(
        "/api/docs",
        lambda: page_response("swagger.html", TOOL_PAGE),
        methods=["GET"],
        include_in_schema=False,
    )
    # The web UI answers what no route matched (its files, and index.html for client routes).
    app.router.default = UiFallback(app.router.default)
    return app
