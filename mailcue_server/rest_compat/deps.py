"""FastAPI dependencies: the resolver Context built from a request or WebSocket.

The same function serves REST routes and GraphQL's context getter, so a
credential means the same on both. Services are put on ``app.state`` by the
app factory.
"""

from typing import Annotated

from fastapi import Depends
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import HTTPConnection

from mailcue_server.errors import Unauthenticated
from mailcue_server.resolvers import principal as principal_resolver
from mailcue_server.resolvers.context import Context, Principal, Services

# auto_error=False: a missing credential is the resolver's call (some routes are public).
bearer_scheme = HTTPBearer(auto_error=False)
api_key_scheme = APIKeyHeader(name="X-API-Key", auto_error=False)


def services_of(conn: HTTPConnection) -> Services:
    services: Services = conn.app.state.services
    return services


def client_ip(conn: HTTPConnection) -> str:
    return conn.client.host if conn.client else ""


async def build_context(
    conn: HTTPConnection, *, bearer: str | None, api_key: str | None
) -> Context:
    """Authenticate the presented credentials and wrap them in a Context."""
    services = services_of(conn)
    found = await principal_resolver.authenticate(services, bearer=bearer, api_key=api_key)
    return Context(
        services=services,
        principal=found,
        client_ip=client_ip(conn),
        user_agent=conn.headers.get("user-agent", ""),
    )


async def get_context(
    conn: HTTPConnection,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Context:
    return await build_context(
        conn, bearer=bearer.credentials if bearer else None, api_key=api_key
    )


async def get_principal(ctx: Annotated[Context, Depends(get_context)]) -> Principal:
    return ctx.require_principal()


Ctx = Annotated[Context, Depends(get_context)]


async def get_public_context(conn: HTTPConnection) -> Context:
    """For routes that need no credentials: whatever is presented is ignored."""
    return Context(
        services=services_of(conn),
        client_ip=client_ip(conn),
        user_agent=conn.headers.get("user-agent", ""),
    )


PublicCtx = Annotated[Context, Depends(get_public_context)]


async def get_lenient_context(
    conn: HTTPConnection,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    api_key: Annotated[str | None, Depends(api_key_scheme)],
) -> Context:
    """Like :func:`get_context`, but rejected credentials mean 'anonymous' (logout)."""
    try:
        return await get_context(conn, bearer, api_key)
    except Unauthenticated:
        return await get_public_context(conn)


LenientCtx = Annotated[Context, Depends(get_lenient_context)]
