"""DKIM signing and verification, checked with dkimpy itself against a stubbed key record."""

from __future__ import annotations

import dkim
import pytest
from cryptography.hazmat.primitives import serialization

from mailcue_server.errors import Invalid
from mailcue_server.mail import dkim as mail_dkim
from mailcue_server.mail.dkim import DkimKeyType, DkimResult

MESSAGE = (
    b"Received: from client by mx; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"From: Alice <alice@example.test>\r\n"
    b"To: bob@elsewhere.test\r\n"
    b"Cc: carol@elsewhere.test\r\n"
    b"Subject: Quarterly numbers\r\n"
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"Message-ID: <q1@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"X-Mailer: test\r\n"
    b"\r\n"
    b"Numbers are up.\r\n"
)
KEY_NAME = "mail._domainkey.example.test"


@pytest.fixture(scope="module", params=list(DkimKeyType))
def key(request: pytest.FixtureRequest) -> mail_dkim.DkimKeyPair:
    pair: mail_dkim.DkimKeyPair = mail_dkim.generate_key(request.param)
    return pair


def stub_dns(key: mail_dkim.DkimKeyPair) -> dict[str, str]:
    return {KEY_NAME: mail_dkim.txt_record(key.key_type, key.public_key)}


def dkimpy_dnsfunc(records: dict[str, str]):  # type: ignore[no-untyped-def]
    """dkimpy's own DNS hook: name (bytes, with a final dot) -> TXT bytes."""

    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        found = records.get(name.decode().rstrip("."))
        return found.encode() if found else None

    return lookup


def signature_tags(signed: bytes) -> dict[bytes, bytes]:
    header = signed[: len(signed) - len(MESSAGE)].split(b":", 1)[1]
    return dkim.util.parse_tag_value(b"".join(header.split()).replace(b";", b"; "))


def test_signature_verifies_with_dkimpy(key: mail_dkim.DkimKeyPair) -> None:
    signed = mail_dkim.sign(MESSAGE, "example.test", "mail", key.private_key_pem)
    assert signed.endswith(MESSAGE) and signed.startswith(b"DKIM-Signature: ")
    assert dkim.verify(signed, dnsfunc=dkimpy_dnsfunc(stub_dns(key)))
    tags = signature_tags(signed)
    assert tags[b"c"] == b"relaxed/relaxed" and tags[b"d"] == b"example.test"
    assert tags[b"s"] == b"mail"
    expected_algorithm = b"rsa-sha256" if key.key_type is DkimKeyType.RSA else b"ed25519-sha256"
    assert tags[b"a"] == expected_algorithm
    signed_fields = tags[b"h"].split(b":")
    # The RFC 6376 5.4.1 fields present, From twice (no second From can be added); never
    # Received or unrecommended ones.
    assert signed_fields.count(b"from") == 2
    for name in (b"to", b"cc", b"subject", b"date", b"message-id", b"mime-version"):
        assert name in signed_fields
    assert b"received" not in signed_fields and b"x-mailer" not in signed_fields


def test_tampering_breaks_it(key: mail_dkim.DkimKeyPair) -> None:
    signed = mail_dkim.sign(MESSAGE, "example.test", "mail", key.private_key_pem)
    lookup = dkimpy_dnsfunc(stub_dns(key))
    for tampered in (
        signed.replace(b"Numbers are up.", b"Numbers are down."),
        signed.replace(b"Subject: Quarterly numbers", b"Subject: Quarterly numbers!"),
        signed.replace(b"To: bob@", b"To: eve@"),
        signed.replace(b"\r\n\r\n", b"\r\nFrom: mallory@evil.test\r\n\r\n", 1),
    ):
        assert not dkim.verify(tampered, dnsfunc=lookup)
        verdict = mail_dkim.verify(tampered, stub_dns(key).get)
        assert verdict.result is DkimResult.FAIL


def test_relaxed_canonicalization_survives_refolding(key: mail_dkim.DkimKeyPair) -> None:
    signed = mail_dkim.sign(MESSAGE, "example.test", "mail", key.private_key_pem)
    refolded = signed.replace(b"Subject: Quarterly numbers", b"Subject:  Quarterly\r\n  numbers")
    refolded = refolded.replace(b"Numbers are up.\r\n", b"Numbers are up.   \r\n\r\n")
    verdict = mail_dkim.verify(refolded, stub_dns(key).get)
    assert verdict.passed, verdict


def test_verify_helper_says_why(key: mail_dkim.DkimKeyPair) -> None:
    signed = mail_dkim.sign(MESSAGE, "example.test", "mail", key.private_key_pem)
    records = stub_dns(key)
    ok = mail_dkim.verify(signed, records.get)
    assert ok.passed and (ok.domain, ok.selector) == ("example.test", "mail")
    assert mail_dkim.signature_key_name(signed) == KEY_NAME

    assert mail_dkim.verify(MESSAGE, records.get).result is DkimResult.NONE
    missing = mail_dkim.verify(signed, {}.get)
    assert missing.result is DkimResult.PERMERROR and "no key" in missing.reason
    other = mail_dkim.generate_key(key.key_type)
    wrong_key = {KEY_NAME: mail_dkim.txt_record(other.key_type, other.public_key)}
    assert mail_dkim.verify(signed, wrong_key.get).result is DkimResult.FAIL

    def timeout(name: str) -> str | None:
        raise TimeoutError("resolver timed out")

    late = mail_dkim.verify(signed, timeout)
    assert late.result is DkimResult.TEMPERROR and "timed out" in late.reason
    body = mail_dkim.verify(signed.replace(b"up.", b"UP."), records.get)
    assert body.reason == "body hash mismatch"


def test_lf_messages_get_an_lf_signature(key: mail_dkim.DkimKeyPair) -> None:
    bare = MESSAGE.replace(b"\r\n", b"\n")
    signed = mail_dkim.sign(bare, "example.test", "mail", key.private_key_pem)
    assert b"\r" not in signed
    assert mail_dkim.verify(signed, stub_dns(key).get).passed


def test_key_formats() -> None:
    rsa_key = mail_dkim.generate_key()
    assert rsa_key.key_type is DkimKeyType.RSA
    assert "BEGIN RSA PRIVATE KEY" in rsa_key.private_key_pem
    loaded = serialization.load_pem_private_key(rsa_key.private_key_pem.encode(), None)
    assert loaded.key_size == 2048  # type: ignore[union-attr]
    # A PKCS#8 export of the same key signs the same way and has the same public key.
    pkcs8 = loaded.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    assert mail_dkim.public_key_of(pkcs8) == (DkimKeyType.RSA, rsa_key.public_key)
    signed = mail_dkim.sign(MESSAGE, "example.test", "mail", pkcs8)
    assert mail_dkim.verify(signed, stub_dns(rsa_key).get).passed
    ed = mail_dkim.generate_key(DkimKeyType.ED25519)
    assert len(ed.public_key) == 44  # base64 of 32 bytes (RFC 8463)
    assert mail_dkim.txt_record(ed.key_type, ed.public_key).startswith("v=DKIM1; k=ed25519; p=")


def test_unusable_input_is_invalid() -> None:
    key = mail_dkim.generate_key(DkimKeyType.ED25519)
    with pytest.raises(Invalid, match="PEM"):
        mail_dkim.sign(MESSAGE, "example.test", "mail", "not a key")
    no_from = MESSAGE.replace(b"From: Alice <alice@example.test>\r\n", b"")
    with pytest.raises(Invalid, match="Cannot DKIM-sign"):
        mail_dkim.sign(no_from, "example.test", "mail", key.private_key_pem)
