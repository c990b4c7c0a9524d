"""/api/v1/domains: managed domains, their DNS records and live checks (admin only)."""

from typing import Annotated

from fastapi import APIRouter, Path, status
from fastapi.responses import PlainTextResponse

from mailcue_server.resolvers import domains
from mailcue_server.rest_compat import mta_sts
from mailcue_server.rest_compat.deps import Ctx
from mailcue_server.rest_compat.error_responses import errors
from mailcue_server.schema.types.domains import (
    DnsCheckResponse,
    DomainCreateRequest,
    DomainDetailResponse,
    DomainListResponse,
    DomainUpdateRequest,
)

router = APIRouter(prefix="/domains", tags=["Domains"])

DomainName = Annotated[str, Path(min_length=1, max_length=253)]


@router.get("", response_model=DomainListResponse)
async def list_all_domains(ctx: Ctx) -> DomainListResponse:
    """List all managed email domains. **Admin only.**"""
    return await domains.list_domains(ctx)


@router.post(
    "",
    response_model=DomainDetailResponse,
    status_code=status.HTTP_201_CREATED,
    responses=errors(409),
)
async def create_domain(ctx: Ctx, body: DomainCreateRequest) -> DomainDetailResponse:
    """Add a domain and generate its DKIM key; the answer lists the DNS records to publish."""
    return await domains.create_domain(ctx, body)


# Before "/{name}" routes for readability; "{name}" never spans a "/" anyway.
router.add_api_route(
    mta_sts.POLICY_PATH,
    mta_sts.policy_response,
    methods=["GET"],
    response_class=PlainTextResponse,
    summary="MTA-STS policy",
    name="mta_sts_policy",
    responses=errors(404),
)


@router.get("/{name}", response_model=DomainDetailResponse)
async def get_domain(ctx: Ctx, name: DomainName) -> DomainDetailResponse:
    """A domain with the DNS records it needs and what the last check found. **Admin only.**"""
    return await domains.get_domain(ctx, name)


@router.patch("/{name}", response_model=DomainDetailResponse)
async def update_domain(
    ctx: Ctx, name: DomainName, body: DomainUpdateRequest
) -> DomainDetailResponse:
    """Activate or deactivate a domain, or change its MTA-STS policy. **Admin only.**"""
    return await domains.update_domain(ctx, name, body)


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_domain(ctx: Ctx, name: DomainName) -> None:
    """Stop managing a domain (mailboxes and mail are kept). **Admin only.**"""
    await domains.delete_domain(ctx, name)


@router.post("/{name}/verify-dns", response_model=DnsCheckResponse)
async def verify_domain_dns(ctx: Ctx, name: DomainName) -> DnsCheckResponse:
    """Run live DNS checks for a domain and store the results. **Admin only.**"""
    return await domains.verify_domain_dns(ctx, name)
