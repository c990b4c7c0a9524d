"""Root fields for GPG keys (the twins of ``/api/v1/gpg/keys``)."""

from __future__ import annotations

from typing import Annotated

import strawberry

from mailcue_server.resolvers import gpg
from mailcue_server.schema.auth import DoneResult
from mailcue_server.schema.context import Info
from mailcue_server.schema.errors import attempt, attempt_done, query
from mailcue_server.schema.types.common import OperationError
from mailcue_server.schema.types.gpg import (
    FetchKeyRequest,
    GenerateKeyRequest,
    GpgKeyExportResponse,
    GpgKeyListResponse,
    GpgKeyResponse,
    ImportKeyRequest,
    KeyserverPublishResponse,
)

GpgKeyResult = Annotated[GpgKeyResponse | OperationError, strawberry.union("GpgKeyResult")]
PublishGpgKeyResult = Annotated[
    KeyserverPublishResponse | OperationError, strawberry.union("PublishGpgKeyResult")
]


@strawberry.type
class GpgQuery:
    @strawberry.field(description="Keys of your mailboxes and the public keys you imported.")
    async def gpg_keys(self, info: Info) -> GpgKeyListResponse:
        return await query(gpg.list_keys(info.context.ctx))

    @strawberry.field(description="The key of an address.")
    async def gpg_key(self, info: Info, address: str) -> GpgKeyResponse:
        return await query(gpg.get_key(info.context.ctx, address))

    @strawberry.field(description="The ASCII-armored public key of an address.")
    async def gpg_key_export(self, info: Info, address: str) -> GpgKeyExportResponse:
        return await query(gpg.export_key(info.context.ctx, address))


@strawberry.type
class GpgMutation:
    @strawberry.mutation(description="Generate a key pair for one of your mailboxes.")
    async def generate_gpg_key(self, info: Info, input: GenerateKeyRequest) -> GpgKeyResult:
        return await attempt(gpg.generate_key(info.context.ctx, input))

    @strawberry.mutation(description="Import a public key, or your mailbox's private key.")
    async def import_gpg_key(self, info: Info, input: ImportKeyRequest) -> GpgKeyResult:
        return await attempt(gpg.import_key(info.context.ctx, input))

    @strawberry.mutation(description="Find an address's key on the keyserver and import it.")
    async def fetch_gpg_key(self, info: Info, input: FetchKeyRequest) -> GpgKeyResult:
        return await attempt(gpg.fetch_key(info.context.ctx, input))

    @strawberry.mutation(description="Upload a public key to the keyserver.")
    async def publish_gpg_key(self, info: Info, address: str) -> PublishGpgKeyResult:
        return await attempt(gpg.publish_key(info.context.ctx, address))

    @strawberry.mutation(description="Delete the keys of an address.")
    async def delete_gpg_key(self, info: Info, address: str) -> DoneResult:
        return await attempt_done(gpg.delete_key(info.context.ctx, address), "GPG key deleted")
