"""/api/v1/gpg/keys: generate, import, fetch, list, read, export, publish and delete keys."""

from fastapi import APIRouter, status
from fastapi.responses import Response

from mailcue_server.resolvers import gpg
from mailcue_server.rest_compat.deps import Ctx
from mailcue_server.rest_compat.error_responses import errors
from mailcue_server.schema.types.gpg import (
    FetchKeyRequest,
    GenerateKeyRequest,
    GpgKeyExportResponse,
    GpgKeyListResponse,
    GpgKeyResponse,
    ImportKeyRequest,
    KeyserverPublishResponse,
)

router = APIRouter(prefix="/gpg", tags=["GPG"])

_KEYSERVER_ERRORS: dict[int | str, dict[str, str]] = {
    **errors(409),
    status.HTTP_502_BAD_GATEWAY: {"description": "The keyserver is unreachable or failed."},
    status.HTTP_504_GATEWAY_TIMEOUT: {"description": "The keyserver did not answer in time."},
}


@router.post(
    "/keys/generate", response_model=GpgKeyResponse, status_code=201, responses=errors(404, 409)
)
async def generate_key(ctx: Ctx, body: GenerateKeyRequest) -> GpgKeyResponse:
    """Generate a key pair for one of your mailboxes (RSA 2048/3072/4096, or ECC)."""
    return await gpg.generate_key(ctx, body)


@router.post(
    "/keys/import", response_model=GpgKeyResponse, status_code=201, responses=errors(404, 409)
)
async def import_key(ctx: Ctx, body: ImportKeyRequest) -> GpgKeyResponse:
    """Import an armored public key, or a private key for one of your mailboxes."""
    return await gpg.import_key(ctx, body)


@router.post(
    "/keys/fetch", response_model=GpgKeyResponse, status_code=201, responses=_KEYSERVER_ERRORS
)
async def fetch_key(ctx: Ctx, body: FetchKeyRequest) -> GpgKeyResponse:
    """Find the public key of an address on the keyserver and import it."""
    return await gpg.fetch_key(ctx, body)


@router.get("/keys", response_model=GpgKeyListResponse)
async def list_keys(ctx: Ctx) -> GpgKeyListResponse:
    """Keys of your mailboxes and the public keys you imported."""
    return await gpg.list_keys(ctx)


@router.get("/keys/{address}", response_model=GpgKeyResponse)
async def get_key(ctx: Ctx, address: str) -> GpgKeyResponse:
    """The key of an address, read from the key itself."""
    return await gpg.get_key(ctx, address)


@router.get("/keys/{address}/export", response_model=GpgKeyExportResponse)
async def export_key(ctx: Ctx, address: str) -> GpgKeyExportResponse:
    """The ASCII-armored public key, with its fingerprint."""
    return await gpg.export_key(ctx, address)


@router.get(
    "/keys/{address}/export/raw",
    response_class=Response,
    responses={200: {"content": {"application/pgp-keys": {}}}},
)
async def export_key_raw(ctx: Ctx, address: str) -> Response:
    """The armored public key as a `<address>.asc` download."""
    key_file = await gpg.export_key_file(ctx, address)
    return Response(
        content=key_file.data,
        media_type=key_file.media_type,
        headers={"Content-Disposition": key_file.content_disposition},
    )


@router.post(
    "/keys/{address}/publish", response_model=KeyserverPublishResponse, responses=_KEYSERVER_ERRORS
)
async def publish_key(ctx: Ctx, address: str) -> KeyserverPublishResponse:
    """Upload the public key to the keyserver and request verification of its addresses."""
    return await gpg.publish_key(ctx, address)


@router.delete("/keys/{address}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_key(ctx: Ctx, address: str) -> None:
    """Delete the keys of an address (the private key with them)."""
    await gpg.delete_key(ctx, address)
