"""Address validation: the request and the report of what was checked and found.

Class names are the REST contract's schema names (``EmailValidation*``);
GraphQL gets shorter names. ``catch_all_risk`` is filled for catch-all
addresses, from the caller's recorded delivery outcomes; the other optional
sections (provider, local part, domain signals) exist for wire compatibility
and are null.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Annotated

import strawberry
from pydantic import Field

# strawberry.field(description=...) would hide optional and list types from pydantic
# (REST), so those fields are described in their type's description instead.

MAX_ADDRESS_LENGTH = 320


@strawberry.enum(name="EmailValidationStatus")
class ValidationStatus(Enum):
    """The address's class, as the SDK's ``status`` literal spells it."""

    VALID = "valid"
    INVALID = "invalid"
    UNDETERMINED = "undetermined"
    DISPOSABLE = "disposable"
    CATCH_ALL = "catch_all"


@strawberry.enum(name="EmailVerdict")
class ValidationVerdict(Enum):
    """Whether mail to the address would arrive."""

    DELIVERABLE = "deliverable"
    UNDELIVERABLE = "undeliverable"
    RISKY = "risky"
    UNKNOWN = "unknown"


@strawberry.enum(name="DnsCheckStatus")
class DnsStatus(Enum):
    VALID = "valid"
    INVALID = "invalid"
    UNDETERMINED = "undetermined"


@strawberry.enum(name="ProbeTransport", description="How the SMTP probe reached the MX.")
class ProbeTransport(Enum):
    DIRECT = "direct"
    MAILCUE_TUNNEL = "mailcue_tunnel"
    NONE = "none"


@strawberry.enum(name="ControlProbeVerdict")
class ControlProbeVerdict(Enum):
    MAILBOX_ABSENT = "mailbox_absent"
    MAILBOX_PRESENT = "mailbox_present"
    TEMPORARY = "temporary"
    POLICY = "policy"
    UNKNOWN = "unknown"


@strawberry.enum(name="RiskLevel")
class RiskLevel(Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    UNKNOWN = "unknown"


@strawberry.enum(name="RecommendedAction")
class RecommendedAction(Enum):
    SEND = "send"
    CAUTION = "caution"
    HOLD = "hold"


@strawberry.enum(name="RiskSource")
class RiskSource(Enum):
    NO_HISTORY = "no_history"
    EXACT_HISTORY = "exact_history"
    DOMAIN_HISTORY = "domain_history"
    SHARED_DOMAIN_HISTORY = "shared_domain_history"
    PROVIDER_HISTORY = "provider_history"
    PROVIDER_PRIOR = "provider_prior"


@strawberry.enum(name="MailProviderCategory")
class ProviderCategory(Enum):
    HOSTED_MAILBOX = "hosted_mailbox"
    SECURITY_GATEWAY = "security_gateway"
    CONSUMER = "consumer"
    SELF_HOSTED = "self_hosted"
    FORWARDER = "forwarder"
    PARKED = "parked"
    UNROUTABLE = "unroutable"
    UNKNOWN = "unknown"


@strawberry.type(
    name="EmailSyntaxCheck",
    description="The address read by RFC 5321/5322 rules; `domain` is normalised "
    "(Unicode for international names).",
)
class EmailValidationSyntax:
    is_valid: bool
    local_part: str | None = None
    domain: str | None = None
    error: str | None = None


@strawberry.type(
    name="EmailDnsCheck",
    description="The domain's MX, A, AAAA and NS records. `errorCode`: nxdomain, "
    "no_mail_host, null_mx, timeout, dns_error, or skipped (not checked).",
)
class EmailValidationDns:
    is_valid: bool = strawberry.field(description="The domain names a host that accepts mail.")
    has_mx: bool
    has_ns: bool
    has_a: bool
    has_aaaa: bool = False
    null_mx: bool = strawberry.field(
        default=False, description="The domain publishes 'MX 0 .': it accepts no mail (RFC 7505)."
    )
    mx_records: list[str] = dataclasses.field(default_factory=list)
    ns_records: list[str] = dataclasses.field(default_factory=list)
    a_records: list[str] = dataclasses.field(default_factory=list)
    aaaa_records: list[str] = dataclasses.field(default_factory=list)
    status: DnsStatus = DnsStatus.INVALID
    error_code: str | None = None
    error: str | None = None


@strawberry.type(name="EmailControlProbe")
class EmailValidationControlProbe:
    shape: str = strawberry.field(description="What kind of made-up recipient was tried.")
    verdict: ControlProbeVerdict
    smtp_code: int | None = None
    smtp_response: str | None = None
    latency_ms: float | None = None


@strawberry.type(
    name="EmailMailboxCheck",
    description="The SMTP probe of the best MX (EHLO, MAIL FROM, RCPT TO, QUIT; never "
    "DATA). `isValid` is what RCPT TO said, null without a clear answer; `catchAll` is "
    "true when a made-up recipient was accepted too; `enhancedStatus` is the RFC 3463 "
    "code of the reply; `reasonCode`: accepted, rejected, temporary, policy, "
    "sender_rejected, refused, unreachable, timeout, protocol_error, no_mail_host, or "
    "skipped.",
)
class EmailValidationMailbox:
    is_valid: bool | None = None
    smtp_code: int | None = None
    smtp_response: str | None = None
    catch_all: bool | None = None
    transport: ProbeTransport = ProbeTransport.NONE
    reason_code: str | None = None
    error: str | None = None
    enhanced_status: str | None = None
    mx_host: str | None = None
    target_latency_ms: float | None = None
    control_median_latency_ms: float | None = None
    control_probes: list[EmailValidationControlProbe] = dataclasses.field(default_factory=list)
    controls_accepted: int = 0
    controls_rejected: int = 0
    controls_inconclusive: int = 0
    selective_recipient_validation: bool | None = None
    order_degraded: bool = False
    sender_reputation_signal: bool = False


@strawberry.type(name="EmailDisposableCheck")
class EmailValidationDisposable:
    is_disposable: bool
    is_forwarding_alias: bool = False
    error: str | None = None


@strawberry.type(name="RiskContribution")
class EmailValidationRiskContribution:
    label: str
    delta: float
    detail: str = ""


@strawberry.type(name="CatchAllRisk")
class EmailValidationCatchAllRisk:
    score: float
    level: RiskLevel
    recommended_action: RecommendedAction
    source: RiskSource
    sample_size: int
    explanation: str
    base_rate: float = 0.125
    provider_id: str | None = None
    provider_rate: float | None = None
    confidence: float = 0.3
    contributions: list[EmailValidationRiskContribution] = dataclasses.field(default_factory=list)


@strawberry.type(name="MailProvider")
class EmailValidationProvider:
    id: str
    name: str
    category: ProviderCategory
    accept_all_bounce_prior: float
    matched_host: str | None = None
    fronts_backend: bool = False
    inferred_backend: str | None = None
    notes: str = ""


@strawberry.type(name="LocalPartSignals")
class EmailValidationLocalPart:
    shape: str
    is_role_account: bool = False
    is_placeholder: bool = False
    is_trap_marker: bool = False
    has_plus_tag: bool = False
    gibberish_score: float = 0.0
    digit_ratio: float = 0.0
    risk_delta: float = 0.0
    notes: list[str] = dataclasses.field(default_factory=list)


@strawberry.type(name="DomainSignals")
class EmailValidationDomainSignals:
    age_days: int | None = None
    expires_in_days: int | None = None
    has_spf: bool = False
    has_dmarc: bool = False
    dmarc_policy: str | None = None
    has_mta_sts: bool = False
    has_tls_rpt: bool = False
    wildcard_dns: bool = False
    parked: bool = False
    inferred_backend: str | None = None
    risk_delta: float = 0.0
    notes: list[str] = dataclasses.field(default_factory=list)


@strawberry.type(
    name="EmailValidation",
    description="What was checked about an address, each check's outcome, and the verdict. "
    "`deliverable` is true/false when the mail server answered clearly, null when it could "
    "not say. `catchAllRisk` estimates the hard-bounce probability of a catch-all address "
    "from your recorded delivery outcomes; provider, localPart and domainSignals are null.",
)
class EmailValidationResponse:
    email: str
    is_valid: bool = strawberry.field(
        description="Well-formed, on a domain that takes mail, not rejected by its MX "
        "and not disposable."
    )
    status: ValidationStatus
    verdict: ValidationVerdict
    deliverable: bool | None
    confidence: float = strawberry.field(description="0 to 1: how sure the verdict is.")
    reason: str
    syntax: EmailValidationSyntax
    dns: EmailValidationDns
    mailbox: EmailValidationMailbox
    disposable: EmailValidationDisposable
    catch_all_risk: EmailValidationCatchAllRisk | None = None
    provider: EmailValidationProvider | None = None
    local_part: EmailValidationLocalPart | None = None
    domain_signals: EmailValidationDomainSignals | None = None


@strawberry.input(name="EmailValidationInput")
class EmailValidationRequest:
    # Field(): REST answers an empty or over-long address with 422, as the contract says.
    email: Annotated[str, Field(min_length=1, max_length=MAX_ADDRESS_LENGTH)]
