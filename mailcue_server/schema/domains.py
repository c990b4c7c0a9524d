"""Root fields for managed domains (admin only) and the public MTA-STS policy."""

from __future__ import annotations

from typing import Annotated

import strawberry

from mailcue_server.resolvers import domains
from mailcue_server.schema.auth import DoneResult
from mailcue_server.schema.context import Info
from mailcue_server.schema.errors import attempt, attempt_done, query
from mailcue_server.schema.types.common import OperationError
from mailcue_server.schema.types.domains import (
    DnsCheckResponse,
    DomainCreateRequest,
    DomainDetailResponse,
    DomainListResponse,
    DomainUpdateRequest,
)

DomainResult = Annotated[DomainDetailResponse | OperationError, strawberry.union("DomainResult")]
DnsCheckResult = Annotated[DnsCheckResponse | OperationError, strawberry.union("DnsCheckResult")]


@strawberry.type
class DomainQuery:
    @strawberry.field(description="All managed domains. Admin only.")
    async def domains(self, info: Info) -> DomainListResponse:
        return await query(domains.list_domains(info.context.ctx))

    @strawberry.field(description="A domain with the DNS records it needs. Admin only.")
    async def domain(self, info: Info, name: str) -> DomainDetailResponse:
        return await query(domains.get_domain(info.context.ctx, name))

    @strawberry.field(description="The MTA-STS policy text of an active managed domain. Public.")
    async def mta_sts_policy(self, info: Info, domain: str) -> str:
        return await query(domains.mta_sts_policy(info.context.ctx, domain))


@strawberry.type
class DomainMutation:
    @strawberry.mutation(description="Add a domain and generate its DKIM key.")
    async def create_domain(self, info: Info, input: DomainCreateRequest) -> DomainResult:
        return await attempt(domains.create_domain(info.context.ctx, input))

    @strawberry.mutation(description="Activate/deactivate a domain or change its MTA-STS policy.")
    async def update_domain(
        self, info: Info, name: str, input: DomainUpdateRequest
    ) -> DomainResult:
        return await attempt(domains.update_domain(info.context.ctx, name, input))

    @strawberry.mutation(description="Stop managing a domain (mailboxes and mail are kept).")
    async def delete_domain(self, info: Info, name: str) -> DoneResult:
        return await attempt_done(domains.delete_domain(info.context.ctx, name), "Domain deleted")

    @strawberry.mutation(description="Look the domain's DNS records up now and store the result.")
    async def verify_domain_dns(self, info: Info, name: str) -> DnsCheckResult:
        return await attempt(domains.verify_domain_dns(info.context.ctx, name))
