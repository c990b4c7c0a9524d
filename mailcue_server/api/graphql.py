"""The /graphql mount: GraphiQL, queries and mutations over HTTP, subscriptions over WebSocket.

Credentials come from the same headers as REST. Browsers cannot set
WebSocket headers, so a ``connection_init`` payload with ``Authorization`` or
``X-API-Key`` is accepted too (STACK-NOTES).
"""

from __future__ import annotations

from cross_web import AsyncHTTPRequestAdapter
from fastapi import Request, Response
from fastapi.responses import HTMLResponse
from starlette.requests import HTTPConnection
from strawberry.exceptions import ConnectionRejectionError
from strawberry.fastapi import GraphQLRouter
from strawberry.http import GraphQLRequestData
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types import ExecutionResult
from strawberry.types.unset import UNSET, UnsetType

from mailcue_server.api.security_headers import TOOL_PAGE
from mailcue_server.api.static_ui import page_response
from mailcue_server.errors import Unauthenticated
from mailcue_server.resolvers.principal import authenticate
from mailcue_server.rest_compat.deps import build_context
from mailcue_server.schema.context import GraphQLContext
from mailcue_server.schema.limits import is_rejection
from mailcue_server.schema.root import build_schema


def _bearer(value: str | None) -> str | None:
    if value and value.lower().startswith("bearer "):
        return value[7:].strip() or None
    return None


async def _context_getter(request: HTTPConnection) -> GraphQLContext:
    headers = request.headers
    bearer = _bearer(headers.get("authorization"))
    api_key = headers.get("x-api-key")
    try:
        ctx = await build_context(request, bearer=bearer, api_key=api_key)
    except Unauthenticated as exc:
        # Public fields (health, login) still work; protected ones raise this error.
        ctx = await build_context(request, bearer=None, api_key=None)
        ctx.auth_error = exc
    return GraphQLContext(ctx)


NO_ACK_PAYLOAD: UnsetType = UNSET


def _param(params: object, name: str) -> str | None:
    """A ``connection_init`` payload entry, its name matched case-insensitively."""
    if not isinstance(params, dict):
        return None
    for key, value in params.items():
        if isinstance(key, str) and key.lower() == name and isinstance(value, str):
            return value
    return None


class MailcueGraphQLRouter(GraphQLRouter[GraphQLContext, None]):
    """Takes WebSocket credentials from ``connection_init`` when no header carried them,
    and answers a document the query limits refused with 400. Its GraphiQL page is the web
    UI build's (our own files, no CDN)."""

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return page_response("graphiql.html", TOOL_PAGE)

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: GraphQLContext,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        result = await super().execute_single(
            request, request_adapter, sub_response, context, root_value, request_data
        )
        if result.data is None and any(is_rejection(error) for error in result.errors or ()):
            sub_response.status_code = 400
        return result

    async def on_ws_connect(self, context: GraphQLContext) -> UnsetType | dict[str, object] | None:
        ctx = context.ctx
        params = context.connection_params
        bearer = _bearer(_param(params, "authorization"))
        api_key = _param(params, "x-api-key")
        if ctx.principal is not None or not (bearer or api_key):
            return NO_ACK_PAYLOAD
        try:
            ctx.principal = await authenticate(ctx.services, bearer=bearer, api_key=api_key)
        except Unauthenticated as exc:
            raise ConnectionRejectionError({"message": exc.message}) from exc
        ctx.auth_error = None
        return NO_ACK_PAYLOAD


def build_graphql_router() -> GraphQLRouter[GraphQLContext, None]:
    return MailcueGraphQLRouter(
        build_schema(),
        context_getter=_context_getter,
        graphql_ide="graphiql",
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
    )
