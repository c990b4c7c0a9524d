"""Inbound authentication verdicts: the DMARC decision and the Authentication-Results field.

Pure: verdicts in, header bytes out, and back. The SMTP worker does the DNS
and the SPF/DKIM checks, then asks this module for the DMARC result (RFC 7489,
evaluated by the ``dmarc`` library with the Organizational Domain taken from
``publicsuffixlist``'s bundled Public Suffix List) and for the header field
(RFC 8601, clauses written and read by ``authres``). The email detail reads
the field back with :func:`trusted_results`.

Forged fields (RFC 8601 section 5): a field carrying our authserv-id that came
in with the message is not removed, because the stored message must stay
byte-identical to what the client sent; it is never read instead. Ours goes
above our own ``Received`` field, and only fields above the first
``Received`` are trusted, so anything that arrived inside DATA is ignored.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.utils import getaddresses

import authres
import authres.dmarc
import dmarc
from publicsuffixlist import PublicSuffixList

from mailcue_server.mail.header_block import header_items, split_head

HEADER_NAME = "Authentication-Results"
MAX_REASON = 120
"""Reasons are for humans (RFC 8601 section 2.7); long ones only make the field unwieldy."""

# Property values we write are domains, selectors or address literals; anything
# else in them is client-supplied text that could fake a clause (authres leaves
# a value containing "@" unquoted), so it becomes "?" like an unsafe HELO does.
_UNSAFE_VALUE = re.compile(r"[^A-Za-z0-9.\-_:\[\]]")
_UNSAFE_REASON = re.compile(r"[^\x20-\x7e]|[\"\\@;()]")
_DMARC_RECORD = re.compile(r"^\s*v\s*=\s*DMARC1\s*(;|$)")

PASS = "pass"  # noqa: S105 - a result name, not a password
FAIL = "fail"
NONE = "none"
TEMPERROR = "temperror"
PERMERROR = "permerror"


@dataclass(frozen=True)
class SpfCheck:
    """The SPF verdict (RFC 7208 section 2.6) on the identity that was checked.

    ``domain`` is the MAIL FROM domain, or the HELO name when ``helo`` is set
    (a null reverse-path makes the HELO identity the one checked).
    """

    result: str
    domain: str | None = None
    helo: bool = False
    reason: str = ""


@dataclass(frozen=True)
class DkimCheck:
    """The verdict on one DKIM-Signature (RFC 6376), with its ``d=`` and ``s=``."""

    result: str
    domain: str | None = None
    selector: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class DmarcCheck:
    """The DMARC verdict for the RFC5322.From domain and the policy that applies to it."""

    result: str
    from_domain: str | None = None
    policy: str | None = None
    reason: str = ""


@dataclass(frozen=True)
class AuthenticationResults:
    """What one Authentication-Results field says; ``header`` is its value as read."""

    authserv_id: str
    spf: SpfCheck
    dmarc: DmarcCheck
    dkim: tuple[DkimCheck, ...] = ()
    header: str = ""

    @property
    def dkim_summary(self) -> DkimCheck:
        """The first passing signature, else the first one, else ``none``."""
        passing = [check for check in self.dkim if check.result == PASS]
        return (passing or list(self.dkim) or [DkimCheck(NONE)])[0]


# --- DMARC -------------------------------------------------------------------------------


@functools.cache
def _public_suffixes() -> PublicSuffixList:
    """The bundled list, parsed once (about 35 ms); unknown TLDs count as public suffixes."""
    return PublicSuffixList(accept_unknown=True)


def organizational_domain(domain: str) -> str:
    """The Organizational Domain (RFC 7489 section 3.2); a public suffix is its own."""
    name = domain.strip(".").lower()
    return _public_suffixes().privatesuffix(name) or name


class _OrganizationalDomains:
    """The ``publicsuffix`` object the ``dmarc`` library asks during relaxed alignment."""

    def get_public_suffix(self, domain: str) -> str:
        return organizational_domain(domain)


def from_domains(raw: bytes) -> list[str]:
    """The distinct domains of the RFC5322.From addresses, in order (RFC 7489 section 6.6.1)."""
    head, _ = split_head(raw)
    values = [value for name, value in header_items(head) if name.strip().lower() == "from"]
    domains: list[str] = []
    for _, address in getaddresses(values):
        domain = address.rpartition("@")[2].strip().strip(".").lower()
        if "@" in address and domain and domain not in domains:
            domains.append(domain)
    return domains


def dmarc_record(texts: Iterable[str]) -> str | None:
    """The one DMARC record among the TXT records at ``_dmarc.<domain>`` (RFC 7489 6.6.3).

    Records not starting with ``v=DMARC1`` are discarded; none or several
    left means no policy.
    """
    records = [text for text in texts if _DMARC_RECORD.match(text)]
    return records[0] if len(records) == 1 else None


def evaluate_dmarc(
    from_domain: str,
    record: str | None,
    *,
    org_domain: str | None,
    spf: SpfCheck,
    dkim: Sequence[DkimCheck],
) -> DmarcCheck:
    """Decide DMARC for a message (RFC 7489 sections 3.1 and 6.6).

    Args:
        from_domain: The RFC5322.From domain.
        record: The policy record found, or None when none was published.
        org_domain: The Organizational Domain whose record was used, or None
            when the record is the From domain's own (then ``sp`` doesn't apply).
        spf: The SPF verdict; it counts only if it passed for an aligned domain.
        dkim: One verdict per signature; any passing, aligned one is enough.
    """
    if record is None:
        return DmarcCheck(NONE, from_domain, reason="no DMARC record published")
    try:
        evaluation = dmarc.DMARCPolicy(
            record=record,
            domain=from_domain,
            org_domain=org_domain,
            publicsuffix=_OrganizationalDomains(),
        )
    except dmarc.RecordSyntaxError as exc:
        return DmarcCheck(PERMERROR, from_domain, reason=f"invalid DMARC record: {exc}")
    policy = evaluation.policy
    applied = policy.sp if org_domain and policy.sp.value else policy.p
    results: list[dmarc.AuthResult] = [
        dmarc.DKIM(check.domain, dmarc.DKIMResult(check.result))
        for check in dkim
        if check.domain and check.result in _DKIM_RESULTS
    ]
    if spf.domain and spf.result in _SPF_RESULTS:
        results.append(dmarc.SPF(spf.domain, dmarc.SPFResult(spf.result)))
    try:
        evaluation.verify(auth_results=results)
    except dmarc.PolicyError:
        return DmarcCheck(
            FAIL, from_domain, applied.value, "no aligned SPF or DKIM pass for the From domain"
        )
    return DmarcCheck(PASS, from_domain, applied.value)


_DKIM_RESULTS = frozenset(member.value for member in dmarc.DKIMResult)
_SPF_RESULTS = frozenset(member.value for member in dmarc.SPFResult)


# --- writing the field ---------------------------------------------------------------------


def _value(text: str | None) -> str | None:
    return _UNSAFE_VALUE.sub("?", text) if text else None


def _reason(text: str) -> str | None:
    cleaned = " ".join(_UNSAFE_REASON.sub("?", text).split())[:MAX_REASON]
    return cleaned or None


def _clauses(results: AuthenticationResults) -> list[str]:
    spf = results.spf
    clauses = [
        str(
            authres.SPFAuthenticationResult(
                result=spf.result,
                reason=_reason(spf.reason) if spf.result != PASS else None,
                smtp_helo=_value(spf.domain) if spf.helo else None,
                smtp_mailfrom=None if spf.helo else _value(spf.domain),
            )
        )
    ]
    for check in results.dkim or (DkimCheck(NONE),):
        clauses.append(
            str(
                authres.DKIMAuthenticationResult(
                    result=check.result,
                    reason=_reason(check.reason) if check.result != PASS else None,
                    header_d=_value(check.domain),
                    header_s=_value(check.selector),
                )
            )
        )
    verdict = results.dmarc
    clauses.append(
        str(
            authres.dmarc.DMARCAuthenticationResult(
                result=verdict.result,
                reason=_reason(verdict.reason) if verdict.result != PASS else None,
                header_from=_value(verdict.from_domain),
                policy=_value(verdict.policy),
            )
        )
    )
    return clauses


def header_field(results: AuthenticationResults) -> bytes:
    """The whole field, one clause per line, CRLF-terminated (RFC 8601 section 2.2).

    The value is ASCII: every part that came from the client is reduced to
    domain characters or a sanitised, quoted reason.
    """
    authserv_id = _value(results.authserv_id) or "localhost"
    lines = [f"{HEADER_NAME}: {authserv_id}", *_clauses(results)]
    return (";\r\n\t".join(lines) + "\r\n").encode("ascii")


# --- reading it back -------------------------------------------------------------------


@functools.cache
def _features() -> authres.FeatureContext:
    return authres.FeatureContext(authres.dmarc)


def parse_value(value: str) -> AuthenticationResults | None:
    """Read one Authentication-Results value (unfolded); None if it doesn't parse."""
    try:
        parsed = _features().parse_value(value)
    except authres.AuthResError:
        return None
    spf = SpfCheck(NONE)
    verdict = DmarcCheck(NONE)
    signatures: list[DkimCheck] = []
    for clause in parsed.results:
        reason = str(clause.reason or "")
        if isinstance(clause, authres.SPFAuthenticationResult):
            helo = not clause.smtp_mailfrom and bool(clause.smtp_helo)
            domain = clause.smtp_helo if helo else clause.smtp_mailfrom
            spf = SpfCheck(clause.result, _opt(domain), helo, reason)
        elif isinstance(clause, authres.DKIMAuthenticationResult):
            if clause.result != NONE or clause.header_d:
                signatures.append(
                    DkimCheck(clause.result, _opt(clause.header_d), _opt(clause.header_s), reason)
                )
        elif isinstance(clause, authres.dmarc.DMARCAuthenticationResult):
            verdict = DmarcCheck(
                clause.result, _opt(clause.header_from), _opt(clause.policy), reason
            )
    return AuthenticationResults(
        authserv_id=str(parsed.authserv_id),
        spf=spf,
        dmarc=verdict,
        dkim=tuple(signatures),
        header=value.strip(),
    )


def _opt(value: object) -> str | None:
    """A property value as a domain (a ``smtp.mailfrom`` written by others may hold an address)."""
    return (str(value).rpartition("@")[2] or None) if value else None


def _ours(value: str, authserv_id: str) -> bool:
    """Cheap test before parsing: does the value start with this authserv-id?"""
    head = value.lstrip().split(";", 1)[0].split("(", 1)[0].strip()
    return head.lower() == authserv_id.lower()


def trusted_results(raw: bytes, authserv_id: str) -> AuthenticationResults | None:
    """Our topmost Authentication-Results, read only from the fields we prepended.

    Only fields above the first ``Received`` count: those are the ones the
    receiving MTA added; one further down came with the message and may be
    forged (RFC 8601 section 5).
    """
    head, _ = split_head(raw)
    for name, value in header_items(head):
        lowered = name.strip().lower()
        if lowered == "received":
            return None
        if lowered == HEADER_NAME.lower() and _ours(value, authserv_id):
            parsed = parse_value(value)
            if parsed is not None:
                return parsed
    return None


def claims_in(raw: bytes, authserv_id: str) -> int:
    """How many Authentication-Results fields in a received message claim our authserv-id."""
    head, _ = split_head(raw)
    return sum(
        1
        for name, value in header_items(head)
        if name.strip().lower() == HEADER_NAME.lower() and _ours(value, authserv_id)
    )
