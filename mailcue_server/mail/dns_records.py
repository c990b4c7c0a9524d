"""The DNS records a managed domain needs, its MTA-STS policy, and how published values are judged.

Pure: no lookups here. :func:`expected_records` lists what to publish (MX,
SPF, DKIM, DMARC, the ``_mta-sts`` TXT, the ``mta-sts`` host, TLS-RPT) and
:func:`judge` compares one of them with what DNS answered, saying why it
does not match. ``store/dns_lookup.py`` asks DNS and calls :func:`judge`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

import dns.exception
import dns.name

from mailcue_server.errors import Invalid

DEFAULT_MX_PREFERENCE = 10
MAX_MTA_STS_AGE = 31557600  # RFC 8461 section 3.2: at most about a year
_LDH_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def domain_name(value: str) -> str:
    """Validate a domain name and return its lowercased ASCII (A-label) form.

    Unicode names are converted with IDNA 2008 (UTS 46 mapping). Needs at
    least two labels and an alphabetic top-level label, so addresses and
    bare host names are refused.

    Raises:
        Invalid: With the reason.
    """
    text = value.strip().rstrip(".")
    if not text:
        raise Invalid("Domain name is empty")
    try:
        name = dns.name.from_unicode(text, idna_codec=dns.name.IDNA_2008_UTS_46)
    except (dns.exception.DNSException, UnicodeError) as exc:
        raise Invalid(f"Invalid domain name '{value}': {exc}") from None
    ascii_name = name.to_text(omit_final_dot=True).lower()
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise Invalid(f"Invalid domain name '{value}': needs at least two labels")
    if not all(_LDH_LABEL.match(label) for label in labels):
        raise Invalid(f"Invalid domain name '{value}': only letters, digits and hyphens")
    if labels[-1].isdigit():
        raise Invalid(f"Invalid domain name '{value}': the top-level label is numeric")
    return ascii_name


def selector_name(value: str) -> str:
    """A DKIM selector: one or more DNS labels (RFC 6376 section 3.1), lowercased.

    Raises:
        Invalid: With the reason.
    """
    text = value.strip().lower()
    labels = text.split(".")
    if not text or len(text) > 63 or not all(_LDH_LABEL.match(label) for label in labels):
        raise Invalid(f"Invalid DKIM selector '{value}': use letters, digits and hyphens")
    return text


class MtaStsMode(StrEnum):
    """RFC 8461 section 5: what senders do when TLS to our MX fails."""

    ENFORCE = "enforce"
    TESTING = "testing"
    NONE = "none"


def mta_sts_policy(mode: MtaStsMode, mx_hosts: Iterable[str], max_age: int) -> str:
    """The policy file served at ``https://mta-sts.<domain>/.well-known/mta-sts.txt``.

    RFC 8461 section 3.2: ``key: value`` lines ending in CRLF.
    """
    lines = ["version: STSv1", f"mode: {mode}"]
    lines += [f"mx: {host}" for host in mx_hosts]
    lines.append(f"max_age: {max_age}")
    return "".join(line + "\r\n" for line in lines)


def mta_sts_policy_id(policy: str) -> str:
    """The ``id=`` of the ``_mta-sts`` record: derived from the text, so it changes with it.

    RFC 8461 section 3.1 allows 1 to 32 letters and digits.
    """
    return hashlib.sha256(policy.encode("utf-8")).hexdigest()[:20]


class RecordKey(StrEnum):
    MX = "mx"
    SPF = "spf"
    DKIM = "dkim"
    DMARC = "dmarc"
    MTA_STS = "mta_sts"
    MTA_STS_HOST = "mta_sts_host"
    TLS_RPT = "tls_rpt"


@dataclass(frozen=True)
class DomainDns:
    """What the records of one domain are made from."""

    domain: str
    mail_host: str
    dkim_selector: str
    dkim_txt: str
    mta_sts_mode: MtaStsMode
    mta_sts_max_age: int

    @property
    def mta_sts_policy(self) -> str:
        return mta_sts_policy(self.mta_sts_mode, [self.mail_host], self.mta_sts_max_age)


@dataclass(frozen=True)
class ExpectedRecord:
    key: RecordKey
    record_type: str
    hostname: str
    value: str
    purpose: str
    required: bool


def expected_records(spec: DomainDns) -> list[ExpectedRecord]:
    """Every record the domain should publish, required ones first."""
    domain, host = spec.domain, spec.mail_host
    policy_id = mta_sts_policy_id(spec.mta_sts_policy)
    return [
        ExpectedRecord(
            RecordKey.MX,
            "MX",
            domain,
            f"{DEFAULT_MX_PREFERENCE} {host}",
            f"Routes mail for {domain} to this server.",
            True,
        ),
        ExpectedRecord(
            RecordKey.SPF,
            "TXT",
            domain,
            "v=spf1 mx ~all",
            "SPF: allows the domain's MX hosts (this server) to send its mail.",
            True,
        ),
        ExpectedRecord(
            RecordKey.DKIM,
            "TXT",
            f"{spec.dkim_selector}._domainkey.{domain}",
            spec.dkim_txt,
            "DKIM: the public key receivers check signatures with "
            "(split into strings of at most 255 characters if your DNS host needs it).",
            True,
        ),
        ExpectedRecord(
            RecordKey.DMARC,
            "TXT",
            f"_dmarc.{domain}",
            f"v=DMARC1; p=quarantine; rua=mailto:postmaster@{domain}",
            "DMARC: tells receivers what to do with mail that fails SPF and DKIM.",
            True,
        ),
        ExpectedRecord(
            RecordKey.MTA_STS,
            "TXT",
            f"_mta-sts.{domain}",
            f"v=STSv1; id={policy_id}",
            "MTA-STS: announces the policy; the id changes whenever the policy does.",
            False,
        ),
        ExpectedRecord(
            RecordKey.MTA_STS_HOST,
            "CNAME",
            f"mta-sts.{domain}",
            host,
            "MTA-STS: the HTTPS host that serves /.well-known/mta-sts.txt (this server).",
            False,
        ),
        ExpectedRecord(
            RecordKey.TLS_RPT,
            "TXT",
            f"_smtp._tls.{domain}",
            f"v=TLSRPTv1; rua=mailto:postmaster@{domain}",
            "TLS-RPT: where senders report TLS failures (RFC 8460).",
            False,
        ),
    ]


@dataclass(frozen=True)
class Lookup:
    """What DNS answered for one question.

    ``values`` are TXT records (each one's strings joined), MX records as
    ``"pref host"``, or CNAME targets. ``error`` is set when the answer is
    unknown (timeout, server failure), as opposed to "no such record".
    ``addresses`` are A/AAAA answers, for host records.
    """

    values: tuple[str, ...] = ()
    error: str | None = None
    addresses: tuple[str, ...] = ()
    missing: str = "no record"


@dataclass(frozen=True)
class Verdict:
    verified: bool
    current_value: str | None
    detail: str


@dataclass(frozen=True)
class Answers:
    """The lookups of one domain check by record key, and the mail host with its addresses."""

    mail_host: str
    by_key: dict[RecordKey, Lookup]
    mail_host_addresses: tuple[str, ...] = field(default=())


def judge(record: ExpectedRecord, answers: Answers) -> Verdict:
    """Does what DNS answered satisfy ``record``? If not, say why."""
    lookup = answers.by_key.get(record.key, Lookup(error="not looked up"))
    if lookup.error:
        return Verdict(False, None, f"DNS lookup failed: {lookup.error}")
    judges = {
        RecordKey.MX: _judge_mx,
        RecordKey.SPF: _judge_spf,
        RecordKey.DKIM: _judge_dkim,
        RecordKey.DMARC: _judge_dmarc,
        RecordKey.MTA_STS: _judge_mta_sts,
        RecordKey.MTA_STS_HOST: _judge_host,
        RecordKey.TLS_RPT: _judge_tls_rpt,
    }
    return judges[record.key](record, lookup, answers)


def _host(name: str) -> str:
    return name.strip().rstrip(".").lower()


def _judge_mx(record: ExpectedRecord, lookup: Lookup, _answers: Answers) -> Verdict:
    current = ", ".join(lookup.values) or None
    if not lookup.values:
        return Verdict(False, None, f"No MX record at {record.hostname} ({lookup.missing})")
    entries: list[tuple[int, str]] = []
    for value in lookup.values:
        preference, _, exchange = value.partition(" ")
        number = preference.isascii() and preference.isdigit()
        entries.append((int(preference) if number else 0, _host(exchange)))
    want = _host(record.value.partition(" ")[2])
    if any(exchange in ("", ".") for _, exchange in entries):
        return Verdict(False, current, "The domain publishes a null MX: it accepts no mail")
    ours = [pref for pref, exchange in entries if exchange == want]
    if not ours:
        return Verdict(False, current, f"MX does not point to {want}")
    best = min(pref for pref, _ in entries)
    if min(ours) > best:
        return Verdict(
            False, current, f"{want} is listed but another MX is preferred ({best} < {min(ours)})"
        )
    return Verdict(True, current, f"MX points to {want}")


def _records_with(lookup: Lookup, version: str) -> list[str]:
    """The TXT records that start with the version tag (case-insensitive, RFC 7208 4.5)."""
    prefix = version.lower()
    found = []
    for value in lookup.values:
        text = value.strip()
        lowered = text.lower()
        if (
            lowered == prefix
            or lowered.startswith(prefix + " ")
            or lowered.startswith(prefix + ";")
        ):
            found.append(text)
    return found


def _one_record(record: ExpectedRecord, lookup: Lookup, version: str, what: str) -> str | Verdict:
    """The single record of a kind, or the verdict that there is none or too many."""
    found = _records_with(lookup, version)
    if not found:
        return Verdict(False, None, f"No {what} record at {record.hostname} ({lookup.missing})")
    if len(found) > 1:
        return Verdict(
            False,
            " | ".join(found),
            f"{len(found)} {what} records published; there must be exactly one",
        )
    return found[0]


def _judge_spf(record: ExpectedRecord, lookup: Lookup, answers: Answers) -> Verdict:
    found = _one_record(record, lookup, "v=spf1", "SPF")
    if isinstance(found, Verdict):
        return found
    terms = [term.lower() for term in found.split()[1:]]
    if "+all" in terms or "all" in terms:
        return Verdict(False, found, "'+all' lets any server send as the domain")
    host = _host(answers.mail_host)
    allowed = {"mx", "+mx", f"a:{host}", f"+a:{host}"}
    if any(term in allowed or _spf_ip_allows(term, answers.mail_host_addresses) for term in terms):
        return Verdict(True, found, "SPF allows this server")
    return Verdict(False, found, "SPF does not allow this server: add the 'mx' mechanism")


def _spf_ip_allows(term: str, addresses: tuple[str, ...]) -> bool:
    mechanism, _, network = term.lstrip("+").partition(":")
    if mechanism not in ("ip4", "ip6") or not network:
        return False
    try:
        allowed = ipaddress.ip_network(network, strict=False)
    except ValueError:
        return False
    return any(ipaddress.ip_address(address) in allowed for address in addresses)


def _tags(text: str) -> dict[str, str] | None:
    # dkimpy (and the DNS resolver it loads) costs start-up ~0.1 s; only this check needs it.
    from dkim.util import InvalidTagValueList, parse_tag_value

    try:
        parsed = parse_tag_value(text.encode("utf-8"))
    except InvalidTagValueList:
        return None
    return {key.decode().lower(): value.decode() for key, value in parsed.items()}


def _judge_dkim(record: ExpectedRecord, lookup: Lookup, _answers: Answers) -> Verdict:
    if not lookup.values:
        return Verdict(False, None, f"No DKIM key at {record.hostname} ({lookup.missing})")
    current = " | ".join(lookup.values)
    want = _tags(record.value) or {}
    for value in lookup.values:
        tags = _tags(value)
        if tags is None:
            continue
        published = re.sub(r"\s+", "", tags.get("p", ""))
        if published == want["p"] and tags.get("k", "rsa").lower() == want["k"]:
            if tags.get("v", "DKIM1") != "DKIM1":
                return Verdict(False, current, "The key record's v= tag must be DKIM1")
            return Verdict(True, current, "The published key is the domain's signing key")
    if len(lookup.values) == 1 and (_tags(lookup.values[0]) or {}).get("p", "x") == "":
        return Verdict(False, current, "The published key is revoked (empty p=)")
    return Verdict(False, current, "The published key differs from the domain's signing key")


def _judge_dmarc(record: ExpectedRecord, lookup: Lookup, _answers: Answers) -> Verdict:
    found = _one_record(record, lookup, "v=DMARC1", "DMARC")
    if isinstance(found, Verdict):
        return found
    tags = _tags(found)
    policy = (tags or {}).get("p", "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return Verdict(False, found, "The DMARC record needs p=none, p=quarantine or p=reject")
    if policy == "none":
        return Verdict(True, found, "DMARC published with p=none (reports only, no enforcement)")
    return Verdict(True, found, f"DMARC published with p={policy}")


def _judge_mta_sts(record: ExpectedRecord, lookup: Lookup, _answers: Answers) -> Verdict:
    found = _one_record(record, lookup, "v=STSv1", "MTA-STS")
    if isinstance(found, Verdict):
        return found
    published = (_tags(found) or {}).get("id", "")
    want = (_tags(record.value) or {})["id"]
    if published != want:
        return Verdict(
            False,
            found,
            f"Published policy id '{published}' is not the current one '{want}': "
            "senders keep using the policy they cached",
        )
    return Verdict(True, found, "The policy id is current")


def _judge_host(record: ExpectedRecord, lookup: Lookup, answers: Answers) -> Verdict:
    want = _host(record.value)
    targets = [_host(value) for value in lookup.values]
    if want in targets:
        return Verdict(True, ", ".join(targets), f"{record.hostname} is an alias of {want}")
    shared = set(lookup.addresses) & set(answers.mail_host_addresses)
    current = ", ".join(targets or lookup.addresses) or None
    if shared:
        return Verdict(True, current, f"{record.hostname} has the address of {want}")
    if not targets and not lookup.addresses:
        return Verdict(False, None, f"{record.hostname} does not resolve ({lookup.missing})")
    return Verdict(False, current, f"{record.hostname} points elsewhere, not to {want}")


def _judge_tls_rpt(record: ExpectedRecord, lookup: Lookup, _answers: Answers) -> Verdict:
    found = _one_record(record, lookup, "v=TLSRPTv1", "TLS-RPT")
    if isinstance(found, Verdict):
        return found
    if not (_tags(found) or {}).get("rua"):
        return Verdict(False, found, "The TLS-RPT record needs a rua= reporting address")
    return Verdict(True, found, "TLS reports have an address")
