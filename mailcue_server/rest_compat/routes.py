"""The /api/v1 route table, readable in one place."""

from fastapi import APIRouter

from mailcue_server.rest_compat import (
    aliases,
    api_keys,
    auth,
    deliverability,
    domains,
    emails,
    events,
    gpg,
    mailboxes,
    outbound_queue,
    send_canaries,
    sending,
    system,
    validation,
)
from mailcue_server.rest_compat.error_responses import document_errors

# In matching order.
PARTS: tuple[APIRouter, ...] = (
    system.router,
    outbound_queue.router,
    # Before every other "/emails" router: "/emails/validate" and the other fixed
    # paths below are not message routes ("/emails/{uid}").
    validation.router,
    deliverability.router,
    send_canaries.router,
    sending.router,
    # api-keys before auth: "/auth/api-keys/scopes" must not be read as a user route.
    api_keys.router,
    auth.router,
    emails.router,
    mailboxes.router,
    events.router,
    domains.router,
    aliases.router,
    gpg.router,
)


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    for part in PARTS:
        document_errors(part.routes)  # 400, 401, 403, 404, 413... in the OpenAPI document
        router.include_router(part)
    return router
