"""OpenPGP keys and PGP/MIME against the real GnuPG: both directions, byte for byte."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pgpy
import pytest
from pgpy.constants import EllipticCurveOID, PubKeyAlgorithm

from gpg_home import OUTSIDE, OUTSIDE_ADDRESS, GnuPG, outside_keyring
from mailcue_server.errors import Invalid
from mailcue_server.mail import pgp, pgp_keys
from mailcue_server.mail.compose import Attachment, Compose, build_message
from mailcue_server.mail.mime import parse_detail
from mailcue_server.mail.pgp_mime import (
    entity_header,
    protect,
    split_head_canonical,
    split_message,
    split_parts,
)

ATTACHMENT = b"\x00\x01binary attachment\xff"


@pytest.fixture(scope="module")
def gpg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GnuPG]:
    """A GnuPG keyring holding a key made by gpg and the secret keys MailCue made."""
    yield from outside_keyring(tmp_path_factory.mktemp("gnupg"))


@pytest.fixture(scope="module")
def keys(gpg: GnuPG) -> dict[str, pgp_keys.PGPKey]:
    """One RSA and one ECC key made by MailCue (their secret keys imported into gpg)."""
    made = {
        "RSA": pgp_keys.generate_key(
            name="Alice",
            address="alice@mailcue.test",
            algorithm="RSA",
            key_length=2048,
            expires_at=None,
        ),
        "ECC": pgp_keys.generate_key(
            name="Bob",
            address="bob@mailcue.test",
            algorithm="ECC",
            key_length=0,
            expires_at=None,
        ),
    }
    for key in made.values():
        gpg.import_key(pgp_keys.private_armor(key))
    return made


@pytest.fixture(scope="module")
def outside_key(gpg: GnuPG) -> pgp_keys.PGPKey:
    return pgp_keys.load_key(gpg.export(OUTSIDE_ADDRESS))


@pytest.fixture(scope="module")
def message() -> bytes:
    return build_message(
        Compose(
            from_address="bob@mailcue.test",
            to=("alice@mailcue.test",),
            subject="Quarterly numbers",
            text="Hello Alice,\n\nthe numbers are attached.\n",
            html="<p>Hello Alice,</p><p>the numbers are attached.</p>",
            attachments=(Attachment("numbers.bin", "application/octet-stream", ATTACHMENT),),
        )
    ).raw


def parts_of(raw: bytes) -> list[bytes]:
    """The body parts of a message's top multipart, byte for byte."""
    _, entity = split_message(raw)
    _, body = split_head_canonical(entity)
    boundary = entity_header(entity).get_boundary()
    assert boundary
    return split_parts(body, boundary)


def payload(part: bytes) -> bytes:
    _, body = split_head_canonical(part)
    return body


def now() -> datetime:
    return datetime.now(UTC)


@pytest.mark.parametrize(
    ("algorithm", "gpg_algo", "bits"), [("RSA", "1", "2048"), ("ECC", "22", "255")]
)
def test_a_generated_key_reads_the_same_in_gpg(
    gpg: GnuPG, keys: dict[str, pgp_keys.PGPKey], algorithm: str, gpg_algo: str, bits: str
) -> None:
    key = keys[algorithm]
    facts = pgp_keys.facts(key)
    records = gpg.show(pgp_keys.public_armor(key))
    primary = next(r for r in records if r[0] == "pub")
    assert next(r[9] for r in records if r[0] == "fpr") == facts.fingerprint
    assert primary[4] == facts.key_id
    assert (primary[3], primary[2]) == (gpg_algo, bits)
    assert (facts.algorithm, str(facts.key_length)) == (
        {"RSA": "RSA", "ECC": "EdDSA"}[algorithm],
        bits,
    )
    assert int(primary[5]) == int(facts.created_at.timestamp())
    assert "s" in primary[11] and "c" in primary[11]  # the primary key signs and certifies
    subkey = next(r for r in records if r[0] == "sub")
    assert subkey[11] == "e" and subkey[4] in facts.key_ids
    uid = next(r for r in records if r[0] == "uid")
    assert uid[9] == facts.uid and facts.uid_email in uid[9]
    assert pgp_keys.public_armor(key).startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    assert "PRIVATE" not in pgp_keys.public_armor(key)


def test_an_expiry_is_written_into_the_key(gpg: GnuPG) -> None:
    expires = pgp_keys.parse_expiry("2y", now())
    assert expires is not None
    key = pgp_keys.generate_key(
        name="Temp",
        address="temp@mailcue.test",
        algorithm="ECC",
        key_length=0,
        expires_at=expires,
    )
    facts = pgp_keys.facts(key)
    assert facts.expires_at is not None and abs(facts.expires_at - expires) < timedelta(seconds=2)
    primary = next(r for r in gpg.show(pgp_keys.public_armor(key)) if r[0] == "pub")
    assert int(primary[6]) == int(facts.expires_at.timestamp())


def test_expiry_spellings() -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    assert pgp_keys.parse_expiry(None, start) is None
    assert pgp_keys.parse_expiry("0", start) is None
    assert pgp_keys.parse_expiry("never", start) is None
    assert pgp_keys.parse_expiry("30", start) == start + timedelta(days=30)
    assert pgp_keys.parse_expiry("2w", start) == start + timedelta(days=14)
    assert pgp_keys.parse_expiry("1y", start) == start + timedelta(days=365)
    assert pgp_keys.parse_expiry("2031-06-01", start) == datetime(2031, 6, 1, tzinfo=UTC)
    for bad in ("soon", "-5", "2029-01-01", "1x"):
        with pytest.raises(Invalid):
            pgp_keys.parse_expiry(bad, start)


def test_generation_refuses_weak_or_unknown_choices() -> None:
    for algorithm, size in (("RSA", 1024), ("RSA", 2000), ("DSA", 2048)):
        with pytest.raises(Invalid):
            pgp_keys.generate_key(
                name="X",
                address="x@mailcue.test",
                algorithm=algorithm,
                key_length=size,
                expires_at=None,
            )
    with pytest.raises(Invalid, match="name"):
        pgp_keys.check_name("Mallory <evil@example.org>")


@pytest.mark.parametrize("algorithm", ["RSA", "ECC"])
def test_gpg_verifies_the_exact_signed_part(
    gpg: GnuPG, keys: dict[str, pgp_keys.PGPKey], message: bytes, algorithm: str, tmp_path: Path
) -> None:
    signed = protect(message, signing_key=keys[algorithm])
    header = entity_header(signed)
    assert header.get_content_type() == "multipart/signed"
    assert header.get_param("protocol") == "application/pgp-signature"
    assert header.get_param("micalg") == "pgp-sha256"
    assert header["Subject"] == "Quarterly numbers" and header["From"] == "bob@mailcue.test"
    body_part, signature_part = parts_of(signed)
    # The signed part is the original entity, unchanged: its Content-* fields and body.
    _, entity = split_message(message)
    assert body_part == entity
    (tmp_path / "part").write_bytes(body_part)
    (tmp_path / "part.asc").write_bytes(payload(signature_part))
    checked = gpg.run("--verify", str(tmp_path / "part.asc"), str(tmp_path / "part"))
    fingerprint = pgp_keys.facts(keys[algorithm]).fingerprint
    assert f"[GNUPG:] VALIDSIG {fingerprint}" in checked.stderr.decode()
    # One changed byte and gpg refuses it too.
    (tmp_path / "part").write_bytes(body_part.replace(b"Hello", b"Jello"))
    bad = gpg.run("--verify", str(tmp_path / "part.asc"), str(tmp_path / "part"), check=False)
    assert bad.returncode != 0 and "[GNUPG:] BADSIG" in bad.stderr.decode()


@pytest.mark.parametrize("algorithm", ["RSA", "ECC"])
def test_gpg_decrypts_what_mailcue_encrypts(
    gpg: GnuPG, keys: dict[str, pgp_keys.PGPKey], message: bytes, algorithm: str
) -> None:
    recipient, sender = keys[algorithm], keys["ECC" if algorithm == "RSA" else "RSA"]
    encrypted = protect(message, encryption_keys=[recipient, sender])
    header = entity_header(encrypted)
    assert header.get_content_type() == "multipart/encrypted"
    assert header.get_param("protocol") == "application/pgp-encrypted"
    control, ciphertext = parts_of(encrypted)
    assert entity_header(control).get_content_type() == "application/pgp-encrypted"
    assert payload(control).strip() == b"Version: 1"
    assert b"Quarterly" not in encrypted.split(b"\r\n\r\n", 1)[1]  # only the headers are clear
    decrypted = gpg.run("--decrypt", input=payload(ciphertext))
    _, entity = split_message(message)
    assert decrypted.stdout == entity
    status = decrypted.stderr.decode()
    for key in (recipient, sender):  # one session key for every recipient (and the sender)
        assert any(f"[GNUPG:] ENC_TO {i}" in status for i in pgp_keys.facts(key).key_ids)


def test_sign_and_encrypt_puts_the_signed_part_inside(
    gpg: GnuPG, keys: dict[str, pgp_keys.PGPKey], message: bytes, tmp_path: Path
) -> None:
    protected = protect(message, signing_key=keys["ECC"], encryption_keys=[keys["RSA"]])
    _, ciphertext = parts_of(protected)
    inner = gpg.run("--decrypt", input=payload(ciphertext)).stdout
    assert entity_header(inner).get_content_type() == "multipart/signed"
    _, inner_body = split_head_canonical(inner)
    boundary = entity_header(inner).get_boundary()
    assert boundary
    signed_part, signature = split_parts(inner_body, boundary)
    (tmp_path / "part").write_bytes(signed_part)
    (tmp_path / "part.asc").write_bytes(payload(signature))
    gpg.run("--verify", str(tmp_path / "part.asc"), str(tmp_path / "part"))

    # Our reader, as the recipient: decrypted, and the signature inside holds.
    opened = pgp.open_message(protected, [keys["RSA"]])
    assert (opened.is_encrypted, opened.decrypted, opened.is_signed) == (True, True, True)
    check = pgp.check_signature(opened.signature, [keys["ECC"]], now())
    assert check.status == "valid"
    assert check.fingerprint == pgp_keys.facts(keys["ECC"]).fingerprint
    assert check.uid == "Bob <bob@mailcue.test>"
    assert opened.decrypted_message is not None
    detail = parse_detail(opened.decrypted_message)
    assert detail.subject == "Quarterly numbers"
    assert detail.text_body == "Hello Alice,\n\nthe numbers are attached.\n"
    assert detail.html_body is not None and "numbers are attached" in detail.html_body
    assert [(a.filename, a.size) for a in detail.attachments] == [("numbers.bin", len(ATTACHMENT))]


def _inner_entity() -> bytes:
    """A MIME entity as another mail program would build it: text, HTML and an attachment."""
    inner = EmailMessage(policy=SMTP)
    inner.set_content("Secret plan, in plain text.\n")
    inner.add_alternative("<p>Secret plan, in <b>HTML</b>.</p>\n", subtype="html")
    inner.add_attachment(
        ATTACHMENT, maintype="application", subtype="octet-stream", filename="plan.bin"
    )
    del inner["MIME-Version"]
    return inner.as_bytes()


def _encrypted_message(armored: bytes) -> bytes:
    """RFC 3156 section 4 around ciphertext gpg made."""
    return (
        b"From: outside@example.org\r\nTo: alice@mailcue.test\r\nSubject: From outside\r\n"
        b"Message-ID: <gpg-1@example.org>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";\r\n'
        b' boundary="gpg-boundary"\r\n\r\n'
        b"--gpg-boundary\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
        b'--gpg-boundary\r\nContent-Type: application/octet-stream; name="encrypted.asc"\r\n\r\n'
        + armored
        + b"\r\n--gpg-boundary--\r\n"
    )


def test_reads_what_gpg_encrypted_and_signed(
    gpg: GnuPG, keys: dict[str, pgp_keys.PGPKey], outside_key: pgp_keys.PGPKey
) -> None:
    """RFC 3156 section 6.2: one OpenPGP message, signed and encrypted by gpg."""
    entity = _inner_entity()
    armored = gpg.sign_and_encrypt(entity, signer=OUTSIDE_ADDRESS, recipient="alice@mailcue.test")
    raw = _encrypted_message(armored)
    opened = pgp.open_message(raw, [keys["RSA"]])
    assert (opened.is_encrypted, opened.decrypted, opened.is_signed) == (True, True, True)
    assert set(opened.encryption_key_ids) & set(pgp_keys.facts(keys["RSA"]).key_ids)
    check = pgp.check_signature(opened.signature, [outside_key], now())
    assert check.status == "valid"
    assert check.fingerprint == gpg.fingerprint(OUTSIDE_ADDRESS)
    assert check.uid == OUTSIDE
    assert opened.decrypted_message is not None
    detail = parse_detail(opened.decrypted_message)
    assert detail.subject == "From outside" and detail.message_id == "<gpg-1@example.org>"
    assert detail.text_body == "Secret plan, in plain text.\n"
    assert detail.html_body == "<p>Secret plan, in <b>HTML</b>.</p>\n"
    assert [(a.filename, a.size) for a in detail.attachments] == [("plan.bin", len(ATTACHMENT))]
    # Without the signer's key: the fingerprint the signature names, and "unknown".
    unknown = pgp.check_signature(opened.signature, [keys["ECC"]], now())
    assert unknown.status == "no_public_key"
    assert unknown.fingerprint == gpg.fingerprint(OUTSIDE_ADDRESS)
    # Another mailbox (no fitting secret key): encrypted, not readable, the recipients named.
    closed = pgp.open_message(raw, [keys["ECC"]])
    assert (closed.is_encrypted, closed.decrypted, closed.decrypted_message) == (True, False, None)
    assert closed.encryption_key_ids == opened.encryption_key_ids


def _signed_by_gpg(gpg: GnuPG, entity: bytes) -> bytes:
    signature = gpg.run(
        "--armor", "--detach-sign", "--local-user", OUTSIDE_ADDRESS, input=entity
    ).stdout
    return (
        b"From: outside@example.org\r\nTo: alice@mailcue.test\r\nSubject: Signed\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/signed; micalg=pgp-sha512;\r\n"
        b' protocol="application/pgp-signature"; boundary="sig-boundary"\r\n\r\n'
        b"This is an OpenPGP/MIME signed message.\r\n"
        b"--sig-boundary\r\n" + entity + b"\r\n--sig-boundary\r\n"
        b'Content-Type: application/pgp-signature; name="signature.asc"\r\n\r\n'
        + signature
        + b"\r\n--sig-boundary--\r\n"
    )


def test_a_detached_gpg_signature_holds_and_one_changed_byte_breaks_it(
    gpg: GnuPG, outside_key: pgp_keys.PGPKey
) -> None:
    raw = _signed_by_gpg(gpg, _inner_entity())
    opened = pgp.open_message(raw)
    assert (opened.is_signed, opened.is_encrypted) == (True, False)
    assert pgp.check_signature(opened.signature, [outside_key], now()).status == "valid"
    tampered = raw.replace(b"Secret plan, in plain text.", b"Secret plan, in plain text!")
    assert tampered != raw
    verdict = pgp.check_signature(pgp.open_message(tampered).signature, [outside_key], now())
    assert verdict.status == "invalid"
    assert verdict.fingerprint == gpg.fingerprint(OUTSIDE_ADDRESS)
    # The same message stored with LF line ends still verifies (canonical form, RFC 3156 5).
    lf_only = raw.replace(b"\r\n", b"\n")
    assert (
        pgp.check_signature(pgp.open_message(lf_only).signature, [outside_key], now()).status
        == "valid"
    )


def test_a_mailcue_signature_breaks_on_one_changed_byte(
    keys: dict[str, pgp_keys.PGPKey], message: bytes
) -> None:
    signed = protect(message, signing_key=keys["RSA"])
    public = pgp_keys.load_key(pgp_keys.public_armor(keys["RSA"]))
    assert pgp.check_signature(pgp.open_message(signed).signature, [public], now()).status == (
        "valid"
    )
    at = signed.index(b"the numbers are attached")
    tampered = signed[:at] + b"T" + signed[at + 1 :]
    assert pgp.check_signature(pgp.open_message(tampered).signature, [public], now()).status == (
        "invalid"
    )
    # A damaged signature block is an error, not a crash.
    damaged = signed.replace(b"-----BEGIN PGP SIGNATURE-----", b"-----BEGIN PGP SIGNATUR-----")
    assert pgp.check_signature(pgp.open_message(damaged).signature, [public], now()).status == (
        "error"
    )


def test_inline_pgp_is_recognised(
    gpg: GnuPG, keys: dict[str, pgp_keys.PGPKey], outside_key: pgp_keys.PGPKey
) -> None:
    head = b"From: outside@example.org\r\nTo: alice@mailcue.test\r\nSubject: Inline\r\n"
    text = b"Meet me at noon.\n"
    armored = gpg.sign_and_encrypt(text, signer=OUTSIDE_ADDRESS, recipient="alice@mailcue.test")
    raw = head + b"Content-Type: text/plain\r\n\r\n" + armored
    opened = pgp.open_message(raw, [keys["RSA"]])
    assert (opened.is_encrypted, opened.decrypted, opened.is_signed) == (True, True, True)
    assert opened.decrypted_message is not None
    assert parse_detail(opened.decrypted_message).text_body == "Meet me at noon.\n"
    assert pgp.check_signature(opened.signature, [outside_key], now()).status == "valid"

    clearsigned = gpg.run(
        "--clearsign", "--local-user", OUTSIDE_ADDRESS, input=b"I said this.\n"
    ).stdout
    raw = head + b"Content-Type: text/plain\r\n\r\n" + clearsigned
    opened = pgp.open_message(raw)
    assert (opened.is_signed, opened.is_encrypted) == (True, False)
    assert pgp.check_signature(opened.signature, [outside_key], now()).status == "valid"
    forged = raw.replace(b"I said this.", b"I said that.")
    assert (
        pgp.check_signature(pgp.open_message(forged).signature, [outside_key], now()).status
        == "invalid"
    )


def test_plain_mail_is_not_pgp(message: bytes) -> None:
    assert not pgp.open_message(message).is_pgp
    assert not pgp.open_message(b"Subject: empty\r\n\r\n").is_pgp
    assert not pgp.open_message(b"").is_pgp


def test_a_signature_by_an_expired_key(gpg: GnuPG) -> None:
    """Signed while the key was valid, read after it expired: ``expired_key``."""
    past = ("--faked-system-time", "20200101T000000!")
    gpg.run(*past, "--quick-gen-key", "Old <old@example.org>", "ed25519", "sign", "1d")
    signature = gpg.run(
        *past,
        "--armor",
        "--detach-sign",
        "--local-user",
        "old@example.org",
        input=b"Content-Type: text/plain\r\n\r\nold news\r\n",
    ).stdout
    raw = (
        b"Subject: old\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/signed; protocol="application/pgp-signature"; boundary="b"\r\n'
        b"\r\n--b\r\nContent-Type: text/plain\r\n\r\nold news\r\n\r\n--b\r\n"
        b"Content-Type: application/pgp-signature\r\n\r\n" + signature + b"\r\n--b--\r\n"
    )
    old = pgp_keys.parse_stored(gpg.export("old@example.org"))
    verdict = pgp.check_signature(pgp.open_message(raw).signature, [old], now())
    assert verdict.status == "expired_key"


def test_import_validation(gpg: GnuPG, keys: dict[str, pgp_keys.PGPKey], tmp_path: Path) -> None:
    def refused(armored: str, words: str) -> None:
        with pytest.raises(Invalid, match=words):
            pgp_keys.load_key(armored)

    refused("hello", "one ASCII-armored key block")
    rsa, ecc = (pgp_keys.public_armor(keys[name]) for name in ("RSA", "ECC"))
    refused(rsa + "\n" + ecc, "several key blocks")
    refused(gpg.export("mailcue.test"), "several keys")  # gpg exports both in one block
    broken = rsa.replace(rsa.splitlines()[5], rsa.splitlines()[5][::-1])
    with pytest.raises(Invalid):
        pgp_keys.load_key(broken)

    # A user id without a valid self-signature.
    bare = pgpy.PGPKey.new(PubKeyAlgorithm.EdDSA, EllipticCurveOID.Ed25519)
    bare.add_uid(pgpy.PGPUID.new("Nobody", email="nobody@example.org"), selfsign=False)
    refused(str(bare.pubkey), "self-signature")

    # A private key locked by a passphrase.
    with GnuPG(tmp_path) as locked:
        locked.run(
            "--passphrase",
            "secret",
            "--quick-gen-key",
            "Locked <l@example.org>",
            "ed25519",
            "sign",
            "never",
        )
        exported = locked.run(
            "--passphrase", "secret", "--armor", "--export-secret-keys", "l@example.org"
        ).stdout.decode()
        refused(exported, "passphrase")

    # A revoked key: gpg writes a revocation certificate for every key it makes.
    fingerprint = gpg.generate("Revoked <revoked@example.org>")
    certificate = (gpg.home / "openpgp-revocs.d" / f"{fingerprint}.rev").read_text()
    gpg.import_key(certificate.replace(":-----BEGIN", "-----BEGIN"))
    refused(gpg.export("revoked@example.org"), "revoked")


def test_keys_offered_by_a_message(keys: dict[str, pgp_keys.PGPKey], gpg: GnuPG) -> None:
    attached = pgp_keys.public_armor(keys["RSA"])
    autocrypt = pgp_keys.load_key(gpg.export(OUTSIDE_ADDRESS))
    keydata = base64.b64encode(bytes(autocrypt)).decode()
    message = EmailMessage(policy=SMTP)
    message["From"] = OUTSIDE_ADDRESS
    message["Autocrypt"] = f"addr=outside@example.org; prefer-encrypt=mutual; keydata={keydata}"
    message.set_content("My keys.\n")
    message.add_attachment(
        attached.encode(), maintype="application", subtype="pgp-keys", filename="alice.asc"
    )
    offered = pgp.offered_keys(message.as_bytes())
    fingerprints = {pgp_keys.facts(pgp_keys.load_key(k)).fingerprint for k in offered}
    assert fingerprints == {
        pgp_keys.facts(keys["RSA"]).fingerprint,
        gpg.fingerprint(OUTSIDE_ADDRESS),
    }
    assert all("PRIVATE" not in k for k in offered)
    assert pgp.offered_keys(b"Subject: none\r\n\r\nnothing\r\n") == []
