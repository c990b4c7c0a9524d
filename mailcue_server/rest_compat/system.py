"""/api/v1/health and /api/v1/system: certificate, settings, TLS upload, production status."""

from fastapi import APIRouter
from fastapi.responses import Response

from mailcue_server.resolvers import readiness, system
from mailcue_server.rest_compat.deps import Ctx, PublicCtx
from mailcue_server.rest_compat.error_responses import errors
from mailcue_server.schema.types.common import HealthResponse
from mailcue_server.schema.types.system import (
    ProductionStatusResponse,
    ServerSettingsResponse,
    TlsCertificateStatus,
    UpdateServerSettingsRequest,
    UploadTlsCertificateRequest,
)

router = APIRouter()
PEM_MEDIA_TYPE = "application/x-pem-file"


@router.get("/health", response_model=HealthResponse, tags=["Health"])
async def health(ctx: PublicCtx) -> HealthResponse:
    """Lightweight health probe for load balancers and container checks."""
    return await system.health(ctx)


@router.get("/system/certificate", response_model=TlsCertificateStatus, tags=["System"])
async def get_certificate_info(ctx: PublicCtx) -> TlsCertificateStatus:
    """The certificate the mail listeners present now, and the CA to trust. No auth."""
    return await system.certificate(ctx)


@router.get(
    "/system/certificate/download",
    response_class=Response,
    responses={200: {"content": {PEM_MEDIA_TYPE: {}}, "description": "The CA, PEM"}},
    tags=["System"],
)
async def download_certificate(ctx: PublicCtx) -> Response:
    """The CA certificate clients should trust, as a PEM file. No auth."""
    pem = await system.ca_certificate_pem(ctx)
    disposition = f'attachment; filename="{system.CA_FILENAME}"'
    return Response(pem, media_type=PEM_MEDIA_TYPE, headers={"Content-Disposition": disposition})


@router.get("/system/settings", response_model=ServerSettingsResponse, tags=["System"])
async def get_settings(ctx: Ctx) -> ServerSettingsResponse:
    """Server-wide settings. **Admin only.**"""
    return await system.get_settings(ctx)


@router.put("/system/settings", response_model=ServerSettingsResponse, tags=["System"])
async def update_settings(ctx: Ctx, body: UpdateServerSettingsRequest) -> ServerSettingsResponse:
    """Change server-wide settings (only the fields given). **Admin only.**"""
    return await system.update_settings(ctx, body)


@router.get("/system/tls", response_model=TlsCertificateStatus, tags=["System"])
async def get_tls_status(ctx: Ctx) -> TlsCertificateStatus:
    """The uploaded TLS certificate, without PEM. **Admin only.**"""
    return await system.tls_status(ctx)


@router.put("/system/tls", response_model=TlsCertificateStatus, tags=["System"])
async def upload_tls(ctx: Ctx, body: UploadTlsCertificateRequest) -> TlsCertificateStatus:
    """Upload a certificate chain and key; new connections present it. **Admin only.**"""
    return await system.upload_tls_certificate(ctx, body)


@router.delete(
    "/system/tls", response_model=TlsCertificateStatus, tags=["System"], responses=errors(404)
)
async def remove_tls(ctx: Ctx) -> TlsCertificateStatus:
    """Forget the uploaded certificate and present the local CA's again. **Admin only.**"""
    return await system.remove_tls_certificate(ctx)


@router.get("/system/production-status", response_model=ProductionStatusResponse, tags=["System"])
async def production_status(ctx: Ctx) -> ProductionStatusResponse:
    """The production readiness checklist, each item with a hint. **Admin only.**"""
    return await readiness.production_status(ctx)
