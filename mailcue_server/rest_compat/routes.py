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


def build_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    router.include_router(system.router)
    router.include_router(outbound_queue.router)
    # Before every other "/emails" router: "/emails/validate" and the other fixed
    # paths below are not message routes ("/emails/{uid}").
    router.include_router(validation.router)
    router.include_router(deliverability.router)
    router.include_router(send_canaries.router)
    router.include_router(sending.router)
    # api-keys before auth: "/auth/api-keys/scopes" must not be read as a user route.
    router.include_router(api_keys.router)
    router.include_router(auth.router)
    router.include_router(emails.router)
    router.include_router(mailboxes.router)
    router.include_router(events.router)
    router.include_router(domains.router)
    router.include_router(aliases.router)
    router.include_router(gpg.router)
    return router
