"""Managed domains (admin only), their DNS records and checks, and the public MTA-STS policy.

The MX and MTA-STS host of every domain is this server's host name
(``settings.effective_hostname``); live checks ask ``MAILCUE_DNS_RESOLVER``.
"""

from __future__ import annotations

from mailcue_server.errors import Invalid, NotFound
from mailcue_server.mail.dkim import DkimKeyType
from mailcue_server.mail.dns_records import MAX_MTA_STS_AGE, MtaStsMode, domain_name, selector_name
from mailcue_server.resolvers.context import Context
from mailcue_server.schema.types.domains import (
    DnsCheckResponse,
    DnsRecordInfo,
    DomainCreateRequest,
    DomainDetailResponse,
    DomainListResponse,
    DomainResponse,
    DomainUpdateRequest,
)
from mailcue_server.store import domains
from mailcue_server.store.domain_models import Domain
from mailcue_server.store.domains import RecordState

READ = "domain:read"
WRITE = "domain:write"
MTA_STS_HOST_PREFIX = "mta-sts."


def _record(state: RecordState) -> DnsRecordInfo:
    record = state.record
    return DnsRecordInfo(
        record_type=record.record_type,
        hostname=record.hostname,
        expected_value=record.value,
        current_value=state.current_value,
        verified=state.verified,
        purpose=record.purpose,
        required=record.required,
        status_detail=state.detail,
        last_checked_at=state.checked_at,
        last_verified_at=state.verified_at,
        drift=state.drift,
    )


def _summary(domain: Domain, states: list[RecordState]) -> DomainResponse:
    verified = domains.flags(states)
    return DomainResponse(
        id=domain.id,
        name=domain.name,
        is_active=domain.is_active,
        created_at=domain.created_at,
        dkim_selector=domain.dkim_selector,
        dkim_key_type=DkimKeyType(domain.dkim_key_type),
        mx_verified=verified["mx_verified"],
        spf_verified=verified["spf_verified"],
        dkim_verified=verified["dkim_verified"],
        dmarc_verified=verified["dmarc_verified"],
        mta_sts_verified=verified["mta_sts_verified"],
        tls_rpt_verified=verified["tls_rpt_verified"],
        last_dns_check=domain.last_dns_check,
        all_verified=verified["all_verified"],
        mta_sts_mode=MtaStsMode(domain.mta_sts_mode),
        mta_sts_max_age=domain.mta_sts_max_age,
    )


def _view(ctx: Context, domain: Domain) -> DomainResponse:
    return _summary(domain, domains.record_states(domain, ctx.settings.effective_hostname))


def _detail(ctx: Context, domain: Domain) -> DomainDetailResponse:
    states = domains.record_states(domain, ctx.settings.effective_hostname)
    spec = domains.dns_spec(domain, ctx.settings.effective_hostname)
    return DomainDetailResponse(
        **vars(_summary(domain, states)),
        dns_records=[_record(state) for state in states],
        dkim_public_key_txt=spec.dkim_txt,
        mta_sts_policy=spec.mta_sts_policy,
    )


def _max_age(value: int) -> int:
    if not 1 <= value <= MAX_MTA_STS_AGE:
        raise Invalid(f"mta_sts_max_age must be between 1 and {MAX_MTA_STS_AGE} seconds")
    return value


async def list_domains(ctx: Context) -> DomainListResponse:
    ctx.require_principal().require_admin(READ)
    found = [_view(ctx, domain) for domain in await domains.list_domains()]
    return DomainListResponse(domains=found, total=len(found))


async def create_domain(ctx: Context, data: DomainCreateRequest) -> DomainDetailResponse:
    """Add a domain and generate its DKIM key; the answer lists the records to publish."""
    ctx.require_principal().require_admin(WRITE)
    domain = await domains.create_domain(
        domain_name(data.name),
        selector=selector_name(data.dkim_selector),
        key_type=DkimKeyType(data.dkim_key_type),
        mta_sts_mode=MtaStsMode(data.mta_sts_mode),
        mta_sts_max_age=_max_age(data.mta_sts_max_age),
        box=domains.dkim_box(ctx.services.secret_key),
    )
    return _detail(ctx, domain)


async def get_domain(ctx: Context, name: str) -> DomainDetailResponse:
    ctx.require_principal().require_admin(READ)
    return _detail(ctx, await domains.get_domain(domain_name(name)))


async def update_domain(
    ctx: Context, name: str, data: DomainUpdateRequest
) -> DomainDetailResponse:
    """Activate/deactivate a domain or change its MTA-STS policy (which changes the policy id)."""
    ctx.require_principal().require_admin(WRITE)
    domain = await domains.get_domain(domain_name(name))
    changed: list[str] = []
    if data.is_active is not None:
        domain.is_active = data.is_active
        changed.append("is_active")
    if data.mta_sts_mode is not None:
        domain.mta_sts_mode = MtaStsMode(data.mta_sts_mode).value
        changed.append("mta_sts_mode")
    if data.mta_sts_max_age is not None:
        domain.mta_sts_max_age = _max_age(data.mta_sts_max_age)
        changed.append("mta_sts_max_age")
    if changed:
        await domains.save(domain, *changed)
    return _detail(ctx, domain)


async def delete_domain(ctx: Context, name: str) -> None:
    """Stop managing a domain; its mailboxes, mail and aliases are kept."""
    ctx.require_principal().require_admin(WRITE)
    await domains.delete_domain(await domains.get_domain(domain_name(name)))


async def verify_domain_dns(ctx: Context, name: str) -> DnsCheckResponse:
    """Look the domain's records up now; the verdicts and the time are stored."""
    ctx.require_principal().require_admin(WRITE)
    domain = await domains.get_domain(domain_name(name))
    await domains.verify_dns(
        domain,
        mail_host=ctx.settings.effective_hostname,
        nameserver=ctx.settings.dns_nameserver,
        now=ctx.now(),
    )
    detail = _detail(ctx, domain)
    return DnsCheckResponse(
        domain=detail.name,
        mx_verified=detail.mx_verified,
        spf_verified=detail.spf_verified,
        dkim_verified=detail.dkim_verified,
        dmarc_verified=detail.dmarc_verified,
        mta_sts_verified=detail.mta_sts_verified,
        tls_rpt_verified=detail.tls_rpt_verified,
        all_verified=detail.all_verified,
        dns_records=detail.dns_records,
        checked_at=domain.last_dns_check,
    )


def _policy_domain(host: str) -> str | None:
    """The domain of an ``mta-sts.<domain>`` Host header (port and case ignored), or None."""
    name = host.strip().lower()
    if name.startswith("["):  # an IPv6 literal is never an mta-sts host
        return None
    name = name.rpartition(":")[0] if ":" in name else name
    if not name.startswith(MTA_STS_HOST_PREFIX):
        return None
    try:
        return domain_name(name.removeprefix(MTA_STS_HOST_PREFIX))
    except Invalid:
        return None


async def mta_sts_policy_for_host(ctx: Context, host: str) -> str:
    """The RFC 8461 policy served at ``/.well-known/mta-sts.txt`` for this Host (no auth).

    ``mta-sts.<domain>`` of a managed domain gets that domain's policy (none
    while it is inactive). Any other Host, such as the server's own name or
    an IP address, gets the primary domain's (``MAILCUE_DOMAIN``), as the
    original server answers there.

    Raises:
        NotFound: The named domain is inactive, or the Host names no managed
            domain and the primary domain is not managed (or inactive).
    """
    name = _policy_domain(host)
    if name is not None and await domains.find_domain(name) is not None:
        return await mta_sts_policy(ctx, name)
    return await mta_sts_policy(ctx, ctx.settings.domain)


async def mta_sts_policy(ctx: Context, name: str) -> str:
    """The RFC 8461 policy of one active managed domain (no auth).

    Raises:
        NotFound: No such domain, or it is inactive.
    """
    try:
        domain = await domains.find_domain(domain_name(name))
    except Invalid:
        domain = None
    if domain is None or not domain.is_active:
        raise NotFound(f"No MTA-STS policy for '{name}'")
    # The same text the record's policy id is computed from.
    return domains.dns_spec(domain, ctx.settings.effective_hostname).mta_sts_policy
