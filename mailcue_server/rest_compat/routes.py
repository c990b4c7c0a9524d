"""The /api/v1 route table, readable in one place."""

from fastapi import APIRouter

from mailcue_server.rest_compat import api_keys, auth, system


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    router.include_router(system.router)
    # api-keys before auth: "/auth/api-keys/scopes" must not be read as a user route.
    router.include_router(api_keys.router)
    router.include_router(auth.router)
    return router
