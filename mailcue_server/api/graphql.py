"""The /graphql mount: GraphiQL, queries and mutations over HTTP, subscriptions over WebSocket.

Credentials come from the same headers as REST. Browsers cannot set
WebSocket headers, so a ``connection_init`` payload with ``Authorization`` or
``X-API-Key`` is accepted too (STACK-NOTES).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from mailcue_server.errors import Unauthenticated
from mailcue_server.rest_compat.deps import build_context
from mailcue_server.schema.context import GraphQLContext
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


def build_graphql_router() -> GraphQLRouter[GraphQLContext, None]:
    return GraphQLRouter(
        build_schema(),
        context_getter=_context_getter,
        graphql_ide="graphiql",
        subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL],
    )
