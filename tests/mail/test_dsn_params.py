"""RFC 3461 parameters: xtext, and what MAIL FROM and RCPT TO may carry."""

from __future__ import annotations

import pytest

from mailcue_server.mail.dsn_params import (
    MAIL_KEYWORDS,
    DsnParameterError,
    DsnRequest,
    RecipientDsn,
    Return,
    decode_xtext,
    encode_xtext,
    mail_parameters,
    rcpt_parameters,
    split_parameters,
)


def test_xtext_round_trip() -> None:
    assert decode_xtext("a+2Bb+3Dc") == "a+b=c"
    assert decode_xtext("Sales@far.test") == "Sales@far.test"
    assert encode_xtext("a+b=c d") == "a+2Bb+3Dc+20d"
    assert decode_xtext(encode_xtext("x+y=z")) == "x+y=z"


@pytest.mark.parametrize("bad", ["a=b", "a+2b", "a+", "a+G1", "a b", "é", "a+0A", "a+7F"])
def test_bad_xtext_is_refused(bad: str) -> None:
    with pytest.raises(DsnParameterError):
        decode_xtext(bad)


def test_only_the_named_parameters_are_taken_in_order() -> None:
    tokens = ["SIZE=10", "ret=hdrs", "BODY=8BITMIME", "ENVID=x"]
    taken, rest = split_parameters(tokens, MAIL_KEYWORDS)
    assert taken == {"RET": "hdrs", "ENVID": "x"}
    assert rest == ["SIZE=10", "BODY=8BITMIME"]
    for bad in (["RET=FULL", "RET=HDRS"], ["RET"], ["RET="]):
        with pytest.raises(DsnParameterError):
            split_parameters(bad, MAIL_KEYWORDS)


def test_mail_parameters() -> None:
    assert mail_parameters({}) == (None, "")
    assert mail_parameters({"RET": "full", "ENVID": "Q+2B1"}) == (Return.FULL, "Q+1")
    for bad in ({"RET": "ALL"}, {"ENVID": "x" * 101}, {"ENVID": "a=b"}):
        with pytest.raises(DsnParameterError):
            mail_parameters(bad)


def test_rcpt_parameters() -> None:
    assert rcpt_parameters({}) == RecipientDsn()
    got = rcpt_parameters({"NOTIFY": "failure,Delay", "ORCPT": "rfc822;A+2BB@x.test"})
    assert got == RecipientDsn(notify=("FAILURE", "DELAY"), orcpt="rfc822;A+B@x.test")
    assert rcpt_parameters({"NOTIFY": "never"}).notify == ("NEVER",)
    for bad in (
        {"NOTIFY": "NEVER,FAILURE"},
        {"NOTIFY": "FAILURE,FAILURE"},
        {"NOTIFY": "SOMETIMES"},
        {"NOTIFY": ""},
        {"ORCPT": "rfc822"},
        {"ORCPT": ";a@b"},
        {"ORCPT": "rfc 822;a@b"},
        {"ORCPT": "rfc822;"},
        {"ORCPT": "rfc822;" + "a" * 500},
    ):
        with pytest.raises(DsnParameterError):
            rcpt_parameters(bad)


@pytest.mark.parametrize(
    ("notify", "wanted"),
    [((), True), (("FAILURE",), True), (("SUCCESS", "FAILURE"), True), (("NEVER",), False),
     (("DELAY",), False), (("SUCCESS",), False)],
)  # fmt: skip
def test_who_wants_a_failure_notice(notify: tuple[str, ...], wanted: bool) -> None:
    assert RecipientDsn(notify=notify).wants_failure_notice() is wanted


def test_a_request_looks_recipients_up_without_case() -> None:
    request = DsnRequest(recipients={"bob@x.test": RecipientDsn(orcpt="rfc822;B@x.test")})
    assert request.for_recipient("Bob@X.test").orcpt == "rfc822;B@x.test"
    assert request.for_recipient("eve@x.test") == RecipientDsn()
