"""Managed domains: creation with a DKIM key, lookup, DNS check results, the signing key.

A domain's DKIM private key is sealed at rest with a :class:`SecretBox`
derived from the server secret (purpose ``"dkim"``); only :func:`signing_key`
opens it. The result of each DNS check is kept per record together with the
value it was checked against, so a record whose expected value has changed
since (a new host name, a new MTA-STS policy) is not shown as verified.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from tortoise.exceptions import IntegrityError

from mailcue_server.errors import Conflict, NotFound
from mailcue_server.mail.dkim import DkimKeyType, generate_key, txt_record
from mailcue_server.mail.dns_records import (
    DomainDns,
    ExpectedRecord,
    MtaStsMode,
    RecordKey,
    Verdict,
    expected_records,
)
from mailcue_server.store import dns_lookup
from mailcue_server.store.credentials import SecretBox
from mailcue_server.store.domain_models import Domain

DKIM_BOX_PURPOSE = "dkim"

# The stored flag of each area and the records it needs.
FLAG_RECORDS: dict[str, tuple[RecordKey, ...]] = {
    "mx_verified": (RecordKey.MX,),
    "spf_verified": (RecordKey.SPF,),
    "dkim_verified": (RecordKey.DKIM,),
    "dmarc_verified": (RecordKey.DMARC,),
    "mta_sts_verified": (RecordKey.MTA_STS, RecordKey.MTA_STS_HOST),
    "tls_rpt_verified": (RecordKey.TLS_RPT,),
}


def dkim_box(server_secret: str) -> SecretBox:
    return SecretBox(server_secret, DKIM_BOX_PURPOSE)


async def create_domain(
    name: str,
    *,
    selector: str,
    key_type: DkimKeyType,
    mta_sts_mode: MtaStsMode,
    mta_sts_max_age: int,
    box: SecretBox,
) -> Domain:
    """Add a domain with a freshly generated DKIM key.

    Args:
        name: The canonical (ASCII, lowercased) domain name.
        selector: The DKIM selector.
        key_type: RSA (2048 bits) or Ed25519.
        mta_sts_mode: The RFC 8461 policy mode.
        mta_sts_max_age: The policy's max_age in seconds.
        box: Seals the private key.

    Raises:
        Conflict: The domain is already managed.
    """
    if await Domain.exists(name=name):
        raise Conflict(f"Domain '{name}' already exists")
    # RSA key generation takes tens of milliseconds: keep it off the event loop.
    pair = await asyncio.to_thread(generate_key, key_type)
    try:
        return await Domain.create(
            name=name,
            dkim_selector=selector,
            dkim_key_type=pair.key_type.value,
            dkim_private_key=box.seal(pair.private_key_pem),
            dkim_public_key=pair.public_key,
            mta_sts_mode=mta_sts_mode.value,
            mta_sts_max_age=mta_sts_max_age,
        )
    except IntegrityError as exc:  # created concurrently
        raise Conflict(f"Domain '{name}' already exists") from exc


async def list_domains() -> list[Domain]:
    return await Domain.all().order_by("name")


async def find_domain(name: str) -> Domain | None:
    return await Domain.get_or_none(name=name)


async def get_domain(name: str) -> Domain:
    """Raises NotFound for a domain that is not managed."""
    domain = await find_domain(name)
    if domain is None:
        raise NotFound(f"Domain '{name}' not found")
    return domain


async def is_managed(name: str) -> bool:
    """True if ``name`` is an active managed domain (production SMTP accepts only those)."""
    return await Domain.exists(name=name.strip().rstrip(".").lower(), is_active=True)


async def delete_domain(domain: Domain) -> None:
    await domain.delete()


async def save(domain: Domain, *changed: str) -> None:
    await domain.save(update_fields=[*changed, "updated_at"])


def dns_spec(domain: Domain, mail_host: str) -> DomainDns:
    """What the domain's records are made of, with this server's host name as MX."""
    return DomainDns(
        domain=domain.name,
        mail_host=mail_host,
        dkim_selector=domain.dkim_selector,
        dkim_txt=dkim_txt(domain),
        mta_sts_mode=MtaStsMode(domain.mta_sts_mode),
        mta_sts_max_age=domain.mta_sts_max_age,
    )


def dkim_txt(domain: Domain) -> str:
    return txt_record(DkimKeyType(domain.dkim_key_type), domain.dkim_public_key)


@dataclass(frozen=True)
class RecordState:
    """One expected record with what the last check found."""

    record: ExpectedRecord
    verified: bool
    current_value: str | None
    detail: str
    checked_at: datetime | None
    verified_at: datetime | None

    @property
    def drift(self) -> bool:
        """Verified once, not any more."""
        return not self.verified and self.verified_at is not None


def _when(value: object) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def record_states(domain: Domain, mail_host: str) -> list[RecordState]:
    """The expected records of a domain merged with its stored check results."""
    states = []
    for record in expected_records(dns_spec(domain, mail_host)):
        stored = domain.dns_results.get(record.key.value)
        if not isinstance(stored, dict):
            states.append(RecordState(record, False, None, "Not checked yet", None, None))
            continue
        verified, detail = bool(stored.get("verified")), str(stored.get("detail", ""))
        if stored.get("expected") != record.value:
            verified = False
            detail = "The expected value changed since the last check; verify again"
        states.append(
            RecordState(
                record,
                verified,
                stored.get("current"),
                detail,
                _when(stored.get("checked_at")),
                _when(stored.get("verified_at")),
            )
        )
    return states


def flags(states: list[RecordState]) -> dict[str, bool]:
    """The ``*_verified`` flags and ``all_verified`` (every required record verified)."""
    verified = {state.record.key for state in states if state.verified}
    result = {flag: all(key in verified for key in keys) for flag, keys in FLAG_RECORDS.items()}
    result["all_verified"] = all(state.verified for state in states if state.record.required)
    return result


async def verify_dns(
    domain: Domain, *, mail_host: str, nameserver: tuple[str, int] | None, now: datetime
) -> Domain:
    """Look up the domain's records now and store each verdict, the flags and the time.

    Args:
        domain: The domain to check.
        mail_host: This server's host name (the MX and MTA-STS host).
        nameserver: ``(ip, port)`` of the DNS server to ask, or None for the system's.
        now: The check time.
    """
    checked = await dns_lookup.check_domain(dns_spec(domain, mail_host), nameserver)
    results = dict(domain.dns_results)
    for record, verdict in checked:
        results[record.key.value] = _stored(record, verdict, results.get(record.key.value), now)
    domain.dns_results = results
    domain.last_dns_check = now
    for flag, value in flags(record_states(domain, mail_host)).items():
        if flag != "all_verified":
            setattr(domain, flag, value)
    await save(domain, "dns_results", "last_dns_check", *FLAG_RECORDS)
    return domain


def _stored(
    record: ExpectedRecord, verdict: Verdict, previous: object, now: datetime
) -> dict[str, object]:
    verified_at = now.isoformat() if verdict.verified else None
    if verified_at is None and isinstance(previous, dict):
        verified_at = previous.get("verified_at")
    return {
        "expected": record.value,
        "current": verdict.current_value,
        "verified": verdict.verified,
        "detail": verdict.detail,
        "checked_at": now.isoformat(),
        "verified_at": verified_at,
    }


async def due_for_check(checked_before: datetime) -> list[Domain]:
    """Active domains never checked, or last checked before the given time."""
    never = await Domain.filter(is_active=True, last_dns_check__isnull=True)
    stale = await Domain.filter(is_active=True, last_dns_check__lt=checked_before)
    return [*never, *stale]


@dataclass(frozen=True)
class SigningKey:
    """What ``mail.dkim.sign`` needs for mail from one domain."""

    domain: str
    selector: str
    private_key_pem: str


async def signing_key(domain_name: str, server_secret: str) -> SigningKey | None:
    """The DKIM key of an active managed domain, or None when we don't sign for it.

    Raises:
        ValueError: The sealed key does not open with this server secret.
    """
    domain = await Domain.get_or_none(name=domain_name.strip().lower(), is_active=True)
    if domain is None:
        return None
    private = dkim_box(server_secret).open(domain.dkim_private_key)
    return SigningKey(domain.name, domain.dkim_selector, private)
