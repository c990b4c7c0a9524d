"""Managed domains: their DKIM key, the DNS records to publish and what DNS shows now."""

from __future__ import annotations

import dataclasses
from datetime import datetime

import strawberry

from mailcue_server.mail.dkim import DkimKeyType
from mailcue_server.mail.dns_records import MtaStsMode

DkimKeyTypeEnum = strawberry.enum(DkimKeyType, name="DkimKeyType")
MtaStsModeEnum = strawberry.enum(MtaStsMode, name="MtaStsMode")

DEFAULT_MTA_STS_MAX_AGE = 604800  # one week, the usual value (RFC 8461 section 3.2)


@strawberry.type(name="DnsRecord", description="A DNS record the domain should publish.")
class DnsRecordInfo:
    record_type: str
    hostname: str
    expected_value: str
    verified: bool
    purpose: str
    # Plain defaults: FastAPI refuses a strawberry.field(default=...) as a pydantic field.
    current_value: str | None = None  # what DNS answered at the last check
    scope: str = "Domain"
    required: bool = True
    status_detail: str | None = None  # why the record is (not) verified
    last_checked_at: datetime | None = None
    last_verified_at: datetime | None = None
    drift: bool = False  # verified at an earlier check, not at the last one


@strawberry.type(name="Domain")
class DomainResponse:
    id: int
    name: str
    is_active: bool
    created_at: datetime
    dkim_selector: str
    dkim_key_type: DkimKeyType
    mx_verified: bool
    spf_verified: bool
    dkim_verified: bool
    dmarc_verified: bool
    mta_sts_verified: bool
    tls_rpt_verified: bool
    last_dns_check: datetime | None
    all_verified: bool = strawberry.field(description="Every required record is verified.")
    mta_sts_mode: MtaStsMode
    mta_sts_max_age: int


@strawberry.type(name="DomainDetail")
class DomainDetailResponse(DomainResponse):
    # dataclasses.field: strawberry.field would hide the list type from pydantic.
    dns_records: list[DnsRecordInfo] = dataclasses.field(default_factory=list)
    dkim_public_key_txt: str | None = None
    # The policy served at https://mta-sts.<name>/.well-known/mta-sts.txt.
    mta_sts_policy: str = ""


@strawberry.type(name="DomainList")
class DomainListResponse:
    domains: list[DomainResponse]
    total: int


@strawberry.type(name="DnsCheck", description="The result of a live DNS check.")
class DnsCheckResponse:
    mx_verified: bool
    spf_verified: bool
    dkim_verified: bool
    dmarc_verified: bool
    all_verified: bool
    dns_records: list[DnsRecordInfo]
    mta_sts_verified: bool = False
    tls_rpt_verified: bool = False
    domain: str = ""
    checked_at: datetime | None = None


@strawberry.input(name="DomainCreateInput")
class DomainCreateRequest:
    name: str
    dkim_selector: str = "mail"
    dkim_key_type: DkimKeyType = DkimKeyType.RSA  # rsa (2048 bits) or ed25519
    mta_sts_mode: MtaStsMode = MtaStsMode.TESTING
    mta_sts_max_age: int = DEFAULT_MTA_STS_MAX_AGE


@strawberry.input(name="DomainUpdateInput", description="Only the fields given are changed.")
class DomainUpdateRequest:
    is_active: bool | None = None
    mta_sts_mode: MtaStsMode | None = None
    mta_sts_max_age: int | None = None
