"""Reading MTA-STS records and policies as a sender (RFC 8461 sections 3.1, 3.2, 4.1)."""

from __future__ import annotations

import pytest

from mailcue_server.mail.dns_records import MtaStsMode, mta_sts_policy
from mailcue_server.mail.mta_sts import InvalidPolicy, mx_matches, parse_policy, policy_id


@pytest.mark.parametrize(
    ("records", "expected"),
    [
        (["v=STSv1; id=20160831085700Z;"], "20160831085700Z"),
        (["v=STSv1;id=abc"], "abc"),
        (["v=STSv1 ; id=abc ; ext=1"], "abc"),
        (["v=spf1 -all", "v=STSv1; id=abc;"], "abc"),  # other records are ignored
        (["v=STSv1; id=a;", "v=STSv1; id=b;"], None),  # two policies: none applies
        (["v=STSv1; id=not-alnum;"], None),
        (["v=STSv1; id=" + "a" * 33], None),
        (["v=STSv1;"], None),
        (["id=abc; v=STSv1"], None),  # v= must come first
        ([], None),
    ],
)
def test_policy_id_from_txt_records(records: list[str], expected: str | None) -> None:
    assert policy_id(records) == expected


def test_a_policy_file_parses_with_crlf_or_lf() -> None:
    text = (
        "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\nmax_age: 86400\n"
    )
    for variant in (text, text.replace("\n", "\r\n")):
        policy = parse_policy(variant)
        assert policy.mode is MtaStsMode.ENFORCE and policy.enforced
        assert policy.mx == ("mail.example.com", "*.example.net")
        assert policy.max_age == 86400


def test_our_own_published_policy_parses_and_names_our_mx() -> None:
    text = mta_sts_policy(MtaStsMode.TESTING, ["mail.example.org"], 604800)
    policy = parse_policy(text)
    assert (policy.mode, policy.max_age) == (MtaStsMode.TESTING, 604800)
    assert policy.allows("mail.example.org") and not policy.allows("mx.example.org")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "version"),
        ("version: STSv1\nmode: strict\nmx: a.example\nmax_age: 1\n", "mode"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmx: a.example\nmax_age: ³\n", "max_age"),
        ("version: STSv1\nmode: enforce\nmax_age: 60\n", "no mx"),
        ("version: STSv1\nmode: enforce\nmx: bad_host!\nmax_age: 60\n", "mx"),
        ("<html>not a policy</html>", "key: value"),
    ],
)
def test_invalid_policies_are_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidPolicy, match=reason):
        parse_policy(text)


def test_mode_none_needs_no_mx_and_unknown_keys_are_ignored() -> None:
    policy = parse_policy("version: STSv1\nmode: none\nmax_age: 0\nfuture: yes\n")
    assert policy.mode is MtaStsMode.NONE and not policy.enforced


@pytest.mark.parametrize(
    ("pattern", "host", "expected"),
    [
        ("mail.example.com", "mail.example.com", True),
        ("mail.example.com", "MAIL.Example.com.", True),
        ("mail.example.com", "mx.example.com", False),
        ("*.example.com", "mx1.example.com", True),
        ("*.example.com", "example.com", False),  # the wildcard is one whole label
        ("*.example.com", "a.b.example.com", False),  # and only one
        ("*.example.com", "mx.example.com.evil.test", False),
    ],
)
def test_mx_matching(pattern: str, host: str, expected: bool) -> None:
    assert mx_matches(pattern, host) is expected
