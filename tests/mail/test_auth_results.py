"""The Authentication-Results field (RFC 8601) and the DMARC decision (RFC 7489), no I/O."""

from __future__ import annotations

import pytest

from mailcue_server.mail.auth_results import (
    AuthenticationResults,
    DkimCheck,
    DmarcCheck,
    SpfCheck,
    claims_in,
    dmarc_record,
    evaluate_dmarc,
    from_domains,
    header_field,
    organizational_domain,
    parse_value,
    trusted_results,
)

US = "mx.mailcue.test"
RECEIVED = b"Received: from client ([192.0.2.9])\r\n\tby mx.mailcue.test with ESMTP id 1; x\r\n"
MESSAGE = b"From: Alice <alice@good.test>\r\nTo: bob@mailcue.test\r\nSubject: hi\r\n\r\nbody\r\n"


def results(**changes: object) -> AuthenticationResults:
    values: dict[str, object] = {
        "authserv_id": US,
        "spf": SpfCheck("pass", "good.test"),
        "dkim": (
            DkimCheck("pass", "good.test", "sel"),
            DkimCheck("fail", "other.test", "s2", "body hash did not verify"),
        ),
        "dmarc": DmarcCheck("pass", "good.test", "reject"),
    }
    values.update(changes)
    return AuthenticationResults(**values)  # type: ignore[arg-type]


def test_the_field_is_folded_ascii_one_clause_a_line() -> None:
    field = header_field(results())
    assert field == (
        b"Authentication-Results: mx.mailcue.test;\r\n"
        b"\tspf=pass smtp.mailfrom=good.test;\r\n"
        b"\tdkim=pass header.d=good.test header.s=sel;\r\n"
        b'\tdkim=fail reason="body hash did not verify" header.d=other.test header.s=s2;\r\n'
        b"\tdmarc=pass header.from=good.test policy.dmarc=reject\r\n"
    )


def test_what_is_written_reads_back() -> None:
    read = trusted_results(header_field(results()) + RECEIVED + MESSAGE, US)
    assert read is not None
    assert read.spf == SpfCheck("pass", "good.test")
    assert [(c.result, c.domain, c.selector) for c in read.dkim] == [
        ("pass", "good.test", "sel"),
        ("fail", "other.test", "s2"),
    ]
    assert read.dkim_summary.domain == "good.test"
    assert (read.dmarc.result, read.dmarc.from_domain, read.dmarc.policy) == (
        "pass",
        "good.test",
        "reject",
    )
    assert read.header.startswith("mx.mailcue.test;") and "\r\n" not in read.header


def test_no_signature_and_a_null_sender_read_as_none_and_helo() -> None:
    written = results(
        spf=SpfCheck("none", "client.example", helo=True, reason="no SPF record"),
        dkim=(),
        dmarc=DmarcCheck("none", "good.test", reason="no DMARC record published"),
    )
    field = header_field(written)
    assert b"spf=none" in field and b"smtp.helo=client.example" in field
    assert b"\tdkim=none;" in field
    read = trusted_results(field + RECEIVED + MESSAGE, US)
    assert read is not None
    assert read.spf.helo and read.spf.domain == "client.example"
    assert read.dkim == () and read.dkim_summary.result == "none"


def test_client_text_cannot_add_a_clause() -> None:
    """HELO, selectors and reasons come from the client; authres leaves "@" values unquoted."""
    sneaky = results(
        spf=SpfCheck("fail", "x@y; dkim=pass", helo=True, reason='a@b"; dmarc=pass (x)'),
        dkim=(DkimCheck("fail", "good.test", "s;dkim=pass header.d=bank.test"),),
    )
    field = header_field(sneaky)
    read = parse_value(field.decode().split(":", 1)[1].replace("\r\n", ""))
    assert read is not None
    assert [c.result for c in read.dkim] == ["fail"]
    assert read.spf.result == "fail" and read.dmarc.result == "pass"
    assert field.count(b"dkim=") == 1


def test_a_forged_field_inside_the_message_is_never_read() -> None:
    forged = (
        b"Authentication-Results: mx.mailcue.test; spf=pass smtp.mailfrom=bank.test;"
        b" dkim=pass header.d=bank.test; dmarc=pass header.from=bank.test\r\n"
    )
    incoming = forged + MESSAGE
    assert claims_in(incoming, US) == 1
    assert trusted_results(RECEIVED + incoming, US) is None  # checks were off: nothing shown
    ours = header_field(results(spf=SpfCheck("fail", "bank.test"), dkim=()))
    read = trusted_results(ours + RECEIVED + incoming, US)
    assert read is not None and read.spf.result == "fail" and read.dkim == ()


def test_only_our_authserv_id_counts() -> None:
    theirs = b"Authentication-Results: mx.elsewhere.test; spf=pass smtp.mailfrom=bank.test\r\n"
    assert trusted_results(theirs + RECEIVED + MESSAGE, US) is None
    mine = header_field(results())
    read = trusted_results(theirs + mine + RECEIVED + MESSAGE, US.upper())
    assert read is not None and read.authserv_id == US


def test_an_unparseable_field_of_ours_is_skipped() -> None:
    broken = b"Authentication-Results: mx.mailcue.test; spf=\r\n"
    assert trusted_results(broken + RECEIVED + MESSAGE, US) is None
    assert parse_value("mx.mailcue.test; none") is not None


@pytest.mark.parametrize(
    ("domain", "organizational"),
    [
        ("a.b.example.co.uk", "example.co.uk"),
        ("news.good.test", "good.test"),  # unknown TLD: the PSL's default "*" rule
        ("good.test", "good.test"),
        ("Mail.Example.COM.", "example.com"),
        ("com", "com"),
    ],
)
def test_organizational_domain(domain: str, organizational: str) -> None:
    assert organizational_domain(domain) == organizational


def test_from_domains() -> None:
    assert from_domains(MESSAGE) == ["good.test"]
    two = b"From: A <a@X.test>, b@y.test, c@x.test\r\n\r\n"
    assert from_domains(two) == ["x.test", "y.test"]
    assert from_domains(b"Subject: none\r\n\r\n") == []
    assert from_domains(b"From: undisclosed\r\n\r\n") == []


def test_the_one_dmarc_record_is_picked() -> None:
    assert dmarc_record(["v=spf1 -all", "v=DMARC1; p=none"]) == "v=DMARC1; p=none"
    assert dmarc_record(["v=DMARC1; p=none", "v=DMARC1; p=reject"]) is None
    assert dmarc_record(["p=reject; v=DMARC1"]) is None
    assert dmarc_record([]) is None


PASS_GOOD = DkimCheck("pass", "good.test", "sel")
SPF_ELSEWHERE = SpfCheck("pass", "bounces.other.test")


def test_dmarc_pass_by_relaxed_dkim_alignment() -> None:
    verdict = evaluate_dmarc(
        "news.good.test",
        "v=DMARC1; p=reject",
        org_domain=None,
        spf=SPF_ELSEWHERE,
        dkim=[PASS_GOOD],
    )
    assert (verdict.result, verdict.policy) == ("pass", "reject")


def test_dmarc_strict_dkim_alignment_wants_the_exact_domain() -> None:
    verdict = evaluate_dmarc(
        "news.good.test",
        "v=DMARC1; p=quarantine; adkim=s",
        org_domain=None,
        spf=SPF_ELSEWHERE,
        dkim=[PASS_GOOD],
    )
    assert (verdict.result, verdict.policy) == ("fail", "quarantine")


def test_dmarc_pass_by_aligned_spf() -> None:
    verdict = evaluate_dmarc(
        "good.test",
        "v=DMARC1; p=reject",
        org_domain=None,
        spf=SpfCheck("pass", "bounce.good.test"),
        dkim=[],
    )
    assert verdict.result == "pass"


def test_dmarc_fails_when_nothing_aligned_passed() -> None:
    """Another .test domain is another organisation, though .test is no listed suffix."""
    verdict = evaluate_dmarc(
        "good.test",
        "v=DMARC1; p=reject",
        org_domain=None,
        spf=SPF_ELSEWHERE,
        dkim=[DkimCheck("fail", "good.test", "sel"), DkimCheck("pass", "other.test", "x")],
    )
    assert (verdict.result, verdict.from_domain, verdict.policy) == ("fail", "good.test", "reject")
    assert verdict.reason


def test_dmarc_subdomain_policy_of_the_organizational_record() -> None:
    verdict = evaluate_dmarc(
        "news.good.test",
        "v=DMARC1; p=reject; sp=none",
        org_domain="good.test",
        spf=SPF_ELSEWHERE,
        dkim=[],
    )
    assert (verdict.result, verdict.policy) == ("fail", "none")


def test_dmarc_none_and_permerror() -> None:
    spf = SpfCheck("none")
    assert evaluate_dmarc("good.test", None, org_domain=None, spf=spf, dkim=[]).result == "none"
    bad = evaluate_dmarc("good.test", "v=DMARC1; p=bogus", org_domain=None, spf=spf, dkim=[])
    assert bad.result == "permerror" and "invalid DMARC record" in bad.reason
    no_p = evaluate_dmarc("good.test", "v=DMARC1; rua=x", org_domain=None, spf=spf, dkim=[])
    assert no_p.result == "permerror"
