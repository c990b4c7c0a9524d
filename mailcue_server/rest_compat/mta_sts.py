"""The MTA-STS policy file (RFC 8461 section 3.3), public, for the domain in the Host header.

Senders fetch ``https://mta-sts.<domain>/.well-known/mta-sts.txt``; the
reference API also serves it under ``/api/v1/domains``.
"""

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse

from mailcue_server.resolvers import domains
from mailcue_server.rest_compat.deps import PublicCtx
from mailcue_server.rest_compat.error_responses import errors

POLICY_PATH = "/.well-known/mta-sts.txt"

router = APIRouter(tags=["Domains"])


async def policy_response(ctx: PublicCtx, request: Request) -> PlainTextResponse:
    """The policy of the managed domain named by ``Host: mta-sts.<domain>``; 404 otherwise."""
    text = await domains.mta_sts_policy_for_host(ctx, request.headers.get("host", ""))
    return PlainTextResponse(text)


router.add_api_route(
    POLICY_PATH,
    policy_response,
    methods=["GET"],
    response_class=PlainTextResponse,
    summary="MTA-STS policy",
    name="mta_sts_policy_wellknown",
    responses=errors(404),
)
