"""The pure half of address validation: syntax, disposable domains, SMTP replies, the verdict.

No sockets here. The resolver does the DNS lookups and the SMTP probe and
hands their outcomes to :func:`judge`, which turns them into the answer's
status, verdict and confidence; one table, so REST and GraphQL agree.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from disposable_email_domains import blocklist
from email_validator import EmailNotValidError, validate_email

from mailcue_server.mail.addresses import email_validator_module

# RFC 3463 enhanced status code at the start of a reply text, e.g. "5.1.1 no such user".
_ENHANCED_STATUS = re.compile(r"^\s*([245]\.\d{1,3}\.\d{1,3})\b")

Status = Literal["valid", "invalid", "undetermined", "disposable", "catch_all"]
VerdictName = Literal["deliverable", "undeliverable", "risky", "unknown"]


@dataclass(frozen=True)
class Syntax:
    """An address as email-validator read it; ``error`` set when it is not an address."""

    local_part: str | None = None
    domain: str | None = None
    ascii_domain: str | None = None
    error: str | None = None

    @property
    def is_valid(self) -> bool:
        return self.error is None

    @property
    def smtp_address(self) -> str:
        """The address as RCPT TO carries it: domain in IDNA (punycode) form."""
        return f"{self.local_part}@{self.ascii_domain}"


def check_syntax(address: str) -> Syntax:
    """Parse ``address`` with RFC 5321/5322 rules; never touches the network."""
    # The special-use names test setups use (.test, .local) are valid syntax here
    # exactly as for mailbox addresses; DNS decides if they exist.
    email_validator_module()
    try:
        parsed = validate_email(address, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as exc:
        local, at, domain = address.rpartition("@")
        return Syntax(local_part=local or None, domain=domain if at else None, error=str(exc))
    return Syntax(
        local_part=parsed.local_part,
        domain=parsed.domain,
        ascii_domain=parsed.ascii_domain.lower(),
    )


def is_disposable(domain: str) -> bool:
    """True if the domain or a parent of it is a known throwaway-mail provider."""
    labels = domain.lower().rstrip(".").split(".")
    return any(".".join(labels[i:]) in blocklist for i in range(len(labels) - 1))


def enhanced_status(text: str) -> str | None:
    """The RFC 3463 status code an SMTP reply text starts with, if any."""
    found = _ENHANCED_STATUS.match(text)
    return found.group(1) if found else None


class RcptReply(StrEnum):
    """What one reply to RCPT TO says about the mailbox."""

    ACCEPTED = "accepted"
    TEMPORARY = "temporary"
    POLICY = "policy"
    REJECTED = "rejected"


def read_rcpt_reply(code: int, text: str) -> RcptReply:
    """Classify a RCPT TO reply (RFC 5321 section 4.2.1).

    A 5.7.x refusal is about the sender (policy, reputation), not the mailbox
    (RFC 3463 section 3.8), so it does not make the address undeliverable.
    """
    if 200 <= code < 300:
        return RcptReply.ACCEPTED
    if 400 <= code < 500:
        return RcptReply.TEMPORARY
    if (enhanced_status(text) or "").startswith("5.7."):
        return RcptReply.POLICY
    return RcptReply.REJECTED


def may_probe(ip: str, *, trust_private: bool) -> bool:
    """Whether the probe may connect to this MX address.

    Public addresses always; loopback and private ones only when the operator
    chose the DNS resolver, so a stranger's MX record cannot point our probe
    at hosts inside the network.
    """
    return trust_private or ipaddress.ip_address(ip).is_global


class DomainState(StrEnum):
    """What DNS said about the domain receiving mail (RFC 5321 section 5.1)."""

    ACCEPTS_MAIL = "accepts_mail"
    NO_MAIL = "no_mail"  # NXDOMAIN, no MX/A/AAAA, or a null MX
    UNKNOWN = "unknown"  # timeout or server failure
    SKIPPED = "skipped"


class RcptState(StrEnum):
    """What the MX said to RCPT TO."""

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    UNKNOWN = "unknown"  # no connection, timeout, 4xx, policy refusal
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Verdict:
    is_valid: bool
    status: Status
    verdict: VerdictName
    deliverable: bool | None
    confidence: float
    reason: str


def judge(
    syntax: Syntax,
    *,
    domain: DomainState,
    domain_error: str | None,
    rcpt: RcptState,
    rcpt_detail: str | None,
    catch_all: bool | None,
    disposable: bool,
) -> Verdict:
    """Combine the checks; a definite "no" wins over softer signals.

    Order: bad syntax, a domain without mail, a rejected recipient (all
    undeliverable), then disposable and catch-all (risky), then what RCPT said.
    """
    if not syntax.is_valid:
        return Verdict(
            False, "invalid", "undeliverable", False, 1.0, f"Invalid address: {syntax.error}"
        )
    if domain is DomainState.NO_MAIL:
        reason = domain_error or "The domain does not accept mail"
        return Verdict(False, "invalid", "undeliverable", False, 0.95, reason)
    if rcpt is RcptState.REJECTED:
        reason = f"The mail server rejected the recipient: {rcpt_detail or 'no reason given'}"
        return Verdict(False, "invalid", "undeliverable", False, 0.9, reason)
    if disposable:
        accepted = True if rcpt is RcptState.ACCEPTED else None
        reason = "The domain belongs to a disposable (temporary) email provider"
        return Verdict(False, "disposable", "risky", accepted, 0.9, reason)
    if domain is not DomainState.ACCEPTS_MAIL:
        reason = f"The domain could not be checked: {domain_error or 'DNS gave no answer'}"
        return Verdict(False, "undetermined", "unknown", None, 0.3, reason)
    if rcpt is RcptState.ACCEPTED and catch_all:
        reason = "The mail server accepts any recipient, so this one cannot be confirmed"
        return Verdict(True, "catch_all", "risky", None, 0.5, reason)
    if rcpt is RcptState.ACCEPTED:
        return Verdict(
            True, "valid", "deliverable", True, 0.95, "The mail server accepts this recipient"
        )
    reason = (
        "The domain accepts mail, but the mailbox could not be checked: "
        f"{rcpt_detail or 'no SMTP answer'}"
    )
    return Verdict(True, "undetermined", "unknown", None, 0.5, reason)
