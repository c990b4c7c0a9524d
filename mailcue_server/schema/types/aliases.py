"""Aliases: a source address (or ``@domain`` catch-all) delivered to one or more destinations."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import strawberry


@strawberry.type(name="Alias")
class AliasResponse:
    id: int
    source_address: str = strawberry.field(
        description="An address, or '@domain' for the domain's catch-all."
    )
    destination_address: str = strawberry.field(
        description="The destinations, comma-separated (the REST contract's single string)."
    )
    domain: str
    is_catchall: bool
    enabled: bool
    created_at: datetime
    updated_at: datetime
    # dataclasses.field: strawberry.field would hide the list type from pydantic.
    destinations: list[str] = dataclasses.field(default_factory=list)


@strawberry.type(name="AliasList")
class AliasListResponse:
    aliases: list[AliasResponse]
    total: int


@strawberry.input(name="AliasCreateInput")
class AliasCreateRequest:
    source_address: str = strawberry.field(
        description="An address, or '@domain' (or '*@domain') for a catch-all."
    )
    destination_address: str = strawberry.field(
        description="One or more addresses, separated by commas."
    )
    enabled: bool = True


@strawberry.input(name="AliasUpdateInput", description="Only the fields given are changed.")
class AliasUpdateRequest:
    # One or more addresses, separated by commas.
    destination_address: str | None = None
    enabled: bool | None = None
