"""The records a domain needs, its MTA-STS policy, and the verdicts on what DNS publishes."""

from __future__ import annotations

import pytest

from mailcue_server.errors import Invalid
from mailcue_server.mail.dns_records import (
    Answers,
    DomainDns,
    ExpectedRecord,
    Lookup,
    MtaStsMode,
    RecordKey,
    domain_name,
    expected_records,
    judge,
    mta_sts_policy_id,
    selector_name,
)

SPEC = DomainDns(
    domain="example.test",
    mail_host="mail.host.test",
    dkim_selector="mail",
    dkim_txt="v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=",
    mta_sts_mode=MtaStsMode.TESTING,
    mta_sts_max_age=86400,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Example.COM.", "example.com"),
        ("  mail.example.test ", "mail.example.test"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
    ],
)
def test_domain_names(value: str, expected: str) -> None:
    assert domain_name(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        ".",
        "localhost",
        "a..b",
        "-a.test",
        "a-.test",
        "a_b.test",
        "exa mple.test",
        "a/b.test",
        "../etc/passwd",
        "1.2.3.4",
        "user@example.test",
        "x" * 64 + ".test",
        ".".join(["abcdefghi"] * 30),
    ],
)
def test_bad_domain_names(value: str) -> None:
    with pytest.raises(Invalid):
        domain_name(value)


def test_selectors() -> None:
    assert selector_name("Mail") == "mail"
    assert selector_name("2024.eu") == "2024.eu"
    for bad in ("", "a b", "_x", "a..b", "x" * 64, "mail._domainkey"):
        with pytest.raises(Invalid):
            selector_name(bad)


def records() -> dict[RecordKey, ExpectedRecord]:
    return {record.key: record for record in expected_records(SPEC)}


def test_expected_records() -> None:
    listed = expected_records(SPEC)
    assert [(r.record_type, r.hostname, r.required) for r in listed] == [
        ("MX", "example.test", True),
        ("TXT", "example.test", True),
        ("TXT", "mail._domainkey.example.test", True),
        ("TXT", "_dmarc.example.test", True),
        ("TXT", "_mta-sts.example.test", False),
        ("CNAME", "mta-sts.example.test", False),
        ("TXT", "_smtp._tls.example.test", False),
    ]
    by_key = records()
    assert by_key[RecordKey.MX].value == "10 mail.host.test"
    assert by_key[RecordKey.SPF].value == "v=spf1 mx ~all"
    assert by_key[RecordKey.DKIM].value == SPEC.dkim_txt
    assert by_key[RecordKey.DMARC].value.startswith("v=DMARC1; p=quarantine")
    assert by_key[RecordKey.MTA_STS_HOST].value == "mail.host.test"
    assert by_key[RecordKey.TLS_RPT].value == "v=TLSRPTv1; rua=mailto:postmaster@example.test"
    assert all(record.purpose for record in listed)


def parse_policy(text: str) -> dict[str, list[str]]:
    """RFC 8461 section 3.2: CRLF-separated "key: value" lines; mx may repeat."""
    assert text.endswith("\r\n")
    fields: dict[str, list[str]] = {}
    for line in text.split("\r\n")[:-1]:
        key, sep, value = line.partition(": ")
        assert sep and key and value, line
        fields.setdefault(key, []).append(value)
    return fields


def test_mta_sts_policy_and_its_id() -> None:
    policy = SPEC.mta_sts_policy
    assert parse_policy(policy) == {
        "version": ["STSv1"],
        "mode": ["testing"],
        "mx": ["mail.host.test"],
        "max_age": ["86400"],
    }
    policy_id = mta_sts_policy_id(policy)
    assert policy_id.isalnum() and 1 <= len(policy_id) <= 32
    assert records()[RecordKey.MTA_STS].value == f"v=STSv1; id={policy_id}"
    # Any change of the policy gives a new id; the same policy keeps its id.
    variants = [
        DomainDns(**{**vars(SPEC), "mta_sts_mode": MtaStsMode.ENFORCE}),
        DomainDns(**{**vars(SPEC), "mta_sts_max_age": 604800}),
        DomainDns(**{**vars(SPEC), "mail_host": "mx2.host.test"}),
    ]
    ids = {mta_sts_policy_id(variant.mta_sts_policy) for variant in variants}
    assert len(ids) == 3 and policy_id not in ids
    assert mta_sts_policy_id(DomainDns(**vars(SPEC)).mta_sts_policy) == policy_id


def verdict(key: RecordKey, lookup: Lookup, addresses: tuple[str, ...] = ()) -> tuple[bool, str]:
    answers = Answers(
        mail_host=SPEC.mail_host, by_key={key: lookup}, mail_host_addresses=addresses
    )
    found = judge(records()[key], answers)
    return found.verified, found.detail


def test_mx_verdicts() -> None:
    key = RecordKey.MX
    assert verdict(key, Lookup(values=("10 mail.host.test",)))[0]
    assert verdict(key, Lookup(values=("5 MAIL.host.test.", "20 backup.test")))[0]
    assert verdict(key, Lookup(missing="example.test does not exist")) == (
        False,
        "No MX record at example.test (example.test does not exist)",
    )
    assert verdict(key, Lookup(values=("10 other.test",))) == (
        False,
        "MX does not point to mail.host.test",
    )
    ok, why = verdict(key, Lookup(values=("20 mail.host.test", "10 other.test")))
    assert not ok and "another MX is preferred" in why
    ok, why = verdict(key, Lookup(values=("0 .",)))
    assert not ok and "null MX" in why
    ok, why = verdict(key, Lookup(error="no answer in time"))
    assert not ok and why == "DNS lookup failed: no answer in time"


def test_spf_verdicts() -> None:
    key = RecordKey.SPF
    assert verdict(key, Lookup(values=("v=spf1 mx ~all", "google-site-verification=x")))[0]
    assert verdict(key, Lookup(values=("v=spf1 a:mail.host.test -all",)))[0]
    assert verdict(key, Lookup(values=("v=spf1 ip4:192.0.2.0/24 -all",)), ("192.0.2.7",))[0]
    cases = {
        ("other=1",): "No SPF record",
        ("v=spf1 mx -all", "v=spf1 a -all"): "2 SPF records published",
        ("v=spf1 mx +all",): "'+all' lets any server send",
        ("v=spf1 include:_spf.other.test -all",): "SPF does not allow this server",
    }
    for values, reason in cases.items():
        ok, why = verdict(key, Lookup(values=values))
        assert not ok and why.startswith(reason), why


def test_dkim_verdicts() -> None:
    key = RecordKey.DKIM
    published = SPEC.dkim_txt
    assert verdict(key, Lookup(values=(published,)))[0]
    assert verdict(key, Lookup(values=(published.replace("; ", ";").replace("v=DKIM1;", ""),)))[0]
    ok, why = verdict(key, Lookup(values=(published.replace("p=11", "p=22"),)))
    assert not ok and "differs" in why
    ok, why = verdict(key, Lookup(values=("v=DKIM1; k=ed25519; p=",)))
    assert not ok and "revoked" in why
    ok, why = verdict(key, Lookup(values=(published.replace("k=ed25519", "k=rsa"),)))
    assert not ok
    ok, why = verdict(key, Lookup(missing="no TXT"))
    assert not ok and why.startswith("No DKIM key at mail._domainkey.example.test")


def test_dmarc_mta_sts_tls_rpt_and_host_verdicts() -> None:
    assert verdict(RecordKey.DMARC, Lookup(values=("v=DMARC1; p=reject",)))[0]
    ok, why = verdict(RecordKey.DMARC, Lookup(values=("v=DMARC1; p=none",)))
    assert ok and "p=none" in why
    ok, why = verdict(RecordKey.DMARC, Lookup(values=("v=DMARC1; p=maybe",)))
    assert not ok and "p=none, p=quarantine or p=reject" in why

    current = records()[RecordKey.MTA_STS].value
    assert verdict(RecordKey.MTA_STS, Lookup(values=(current,)))[0]
    ok, why = verdict(RecordKey.MTA_STS, Lookup(values=("v=STSv1; id=20200101",)))
    assert not ok and "'20200101' is not the current one" in why

    assert verdict(RecordKey.TLS_RPT, Lookup(values=("v=TLSRPTv1; rua=mailto:a@b.test",)))[0]
    ok, why = verdict(RecordKey.TLS_RPT, Lookup(values=("v=TLSRPTv1",)))
    assert not ok and "rua=" in why

    host = RecordKey.MTA_STS_HOST
    assert verdict(host, Lookup(values=("mail.host.test",), addresses=("192.0.2.1",)))[0]
    assert verdict(host, Lookup(addresses=("192.0.2.1",)), ("192.0.2.1",))[0]
    ok, why = verdict(host, Lookup(values=("other.test",), addresses=("192.0.2.9",)))
    assert not ok and "points elsewhere" in why
    ok, why = verdict(host, Lookup(missing="mta-sts.example.test does not exist"))
    assert not ok and "does not resolve" in why
