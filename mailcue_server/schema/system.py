"""Root fields for server-wide facts: health, certificate, settings, TLS, readiness."""

from __future__ import annotations

from typing import Annotated

import strawberry

from mailcue_server.resolvers import readiness, system
from mailcue_server.schema.context import Info
from mailcue_server.schema.errors import attempt, query
from mailcue_server.schema.types.common import HealthResponse, OperationError
from mailcue_server.schema.types.system import (
    MailListener,
    ProductionStatusResponse,
    ServerSettingsResponse,
    TlsCertificateStatus,
    UpdateServerSettingsRequest,
    UploadTlsCertificateRequest,
)

SystemSettingsResult = Annotated[
    ServerSettingsResponse | OperationError, strawberry.union("SystemSettingsResult")
]
TlsCertificateResult = Annotated[
    TlsCertificateStatus | OperationError, strawberry.union("TlsCertificateResult")
]


@strawberry.type
class SystemQuery:
    @strawberry.field(description="Liveness; needs no credentials.")
    async def health(self, info: Info) -> HealthResponse:
        return await query(system.health(info.context.ctx))

    @strawberry.field(
        description="The certificate the mail listeners present now; needs no credentials."
    )
    async def system_certificate(self, info: Info) -> TlsCertificateStatus:
        return await query(system.certificate(info.context.ctx))

    @strawberry.field(
        description="This node's mail listeners (ports and TLS) to connect clients to; "
        "needs no credentials."
    )
    async def mail_listeners(self, info: Info) -> list[MailListener]:
        return await query(system.mail_listeners(info.context.ctx))

    @strawberry.field(description="PEM of the CA clients should trust; needs no credentials.")
    async def ca_certificate_pem(self, info: Info) -> str:
        return await query(system.ca_certificate_pem(info.context.ctx))

    @strawberry.field(description="The uploaded TLS certificate, if any. Admin only.")
    async def tls_status(self, info: Info) -> TlsCertificateStatus:
        return await query(system.tls_status(info.context.ctx))

    @strawberry.field(description="Server-wide settings. Admin only.")
    async def system_settings(self, info: Info) -> ServerSettingsResponse:
        return await query(system.get_settings(info.context.ctx))

    @strawberry.field(description="The production readiness checklist. Admin only.")
    async def production_status(self, info: Info) -> ProductionStatusResponse:
        return await query(readiness.production_status(info.context.ctx))


@strawberry.type
class SystemMutation:
    @strawberry.mutation(description="Change server-wide settings (only the fields given).")
    async def update_system_settings(
        self, info: Info, input: UpdateServerSettingsRequest
    ) -> SystemSettingsResult:
        return await attempt(system.update_settings(info.context.ctx, input))

    @strawberry.mutation(description="Install a certificate chain and key on every listener.")
    async def upload_tls_certificate(
        self, info: Info, input: UploadTlsCertificateRequest
    ) -> TlsCertificateResult:
        return await attempt(system.upload_tls_certificate(info.context.ctx, input))

    @strawberry.mutation(description="Forget the uploaded certificate; use the local CA's.")
    async def remove_tls_certificate(self, info: Info) -> TlsCertificateResult:
        return await attempt(system.remove_tls_certificate(info.context.ctx))
