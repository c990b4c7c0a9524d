"""TLS material and hot swap, checked over real TLS on loopback.

Clients are the stdlib ``ssl`` module and, when installed, ``openssl s_client``.
Fingerprints are computed here from the DER the client received, never taken
from the code under test.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from certs import (
    DAY,
    ISSUING_CA,
    LOOPBACK,
    NOW,
    ROOT_CA,
    fingerprint,
    issue,
    key_pem,
    make_chain,
    new_key,
    pem,
    sha256,
)
from mailcue_server import errors
from mailcue_server.workers.tls import TlsManager

HOSTNAME = "mail.example.test"
NAMES = (HOSTNAME, "localhost")  # the leaf's DNS names; IPS its IP addresses
IPS = (LOOPBACK,)
TLS_VERSIONS = [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3]
# Generous: a loaded CI machine can be slow, and a hang must still fail the test.
TIMEOUT = 20


# --- a real listener on loopback ---------------------------------------------


@dataclass
class Listener:
    server: asyncio.Server
    port: int
    # The SNI value each handshake carried (None = no SNI), seen by the callback.
    server_names: list[str | None] = field(default_factory=list)


@pytest.fixture
def manager(tmp_path: Path) -> TlsManager:
    tls = TlsManager(tmp_path / "tls", HOSTNAME)
    tls.load()
    return tls


@pytest.fixture
async def listener(manager: TlsManager) -> AsyncIterator[Listener]:
    context = manager.server_context()
    select = context.sni_callback
    assert select is not None
    names: list[str | None] = []

    def record_then_select(obj: ssl.SSLObject, name: str | None, ctx: ssl.SSLContext) -> None:
        names.append(name)
        select(obj, name, ctx)  # type: ignore[arg-type]  # typeshed says str; None is real

    context.sni_callback = record_then_select
    server = await asyncio.start_server(_line_echo(context), host="127.0.0.1", port=0, ssl=context)
    port = server.sockets[0].getsockname()[1]
    yield Listener(server=server, port=port, server_names=names)
    server.close()
    await server.wait_closed()


def _line_echo(
    context: ssl.SSLContext,
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """Serve a line echo with a STARTTLS verb: just enough of a mail protocol."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            if line == b"STARTTLS\r\n":
                writer.write(b"220 go ahead\r\n")
                await writer.drain()
                await writer.start_tls(context)
                continue
            writer.write(line)
            await writer.drain()
        writer.close()

    return serve


def _client_context(cadata: bytes, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=cadata.decode())
    if version is not None:
        context.minimum_version = context.maximum_version = version
    return context


@dataclass
class Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @property
    def peer_sha256(self) -> str:
        der = self.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return sha256(der)

    @property
    def version(self) -> str:
        return str(self.writer.get_extra_info("ssl_object").version())

    async def echo(self, data: bytes) -> bytes:
        self.writer.write(data)
        await self.writer.drain()
        return await asyncio.wait_for(self.reader.readline(), TIMEOUT)

    async def close(self) -> None:
        self.writer.close()
        await asyncio.wait_for(self.writer.wait_closed(), TIMEOUT)


async def connect(port: int, context: ssl.SSLContext, server_hostname: str) -> Connection:
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=server_hostname),
        TIMEOUT,
    )
    connection = Connection(reader, writer)
    assert await connection.echo(b"ping\r\n") == b"ping\r\n"
    return connection


async def peer_sha256(port: int, context: ssl.SSLContext, server_hostname: str) -> str:
    connection = await connect(port, context, server_hostname)
    await connection.close()
    return connection.peer_sha256


def _key_files(tls_dir: Path) -> list[Path]:
    return [p for p in tls_dir.iterdir() if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]


# --- local material ------------------------------------------------------------


def test_first_load_creates_local_ca_and_server_certificate(manager: TlsManager) -> None:
    ca = x509.load_pem_x509_certificate(manager.ca_pem())
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
    assert ca.issuer == ca.subject

    info = manager.info()
    assert info.common_name == HOSTNAME
    assert info.issuer == ca.subject.rfc4514_string()
    assert set(info.san_dns_names) == {HOSTNAME, "localhost"}
    assert set(info.san_ip_addresses) == {"127.0.0.1", "::1"}
    assert info.not_before.tzinfo is not None
    assert info.not_before < dt.datetime.now(dt.UTC) < info.not_after
    assert re.fullmatch(r"([0-9A-F]{2}:){31}[0-9A-F]{2}", info.sha256)
    assert (info.is_uploaded, info.is_self_signed_local) == (False, True)


def test_key_files_are_private(manager: TlsManager, tmp_path: Path) -> None:
    keys = _key_files(tmp_path / "tls")
    assert len(keys) == 2  # the CA's and the server's
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in keys)

    upload = make_chain(NAMES)
    manager.install(upload.chain_pem, upload.key_pem)
    keys = _key_files(tmp_path / "tls")
    assert len(keys) == 3
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in keys)


def test_reload_restores_0600_on_loosened_key_files(manager: TlsManager, tmp_path: Path) -> None:
    for key in _key_files(tmp_path / "tls"):
        key.chmod(0o644)
    manager.load()
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in _key_files(tmp_path / "tls"))


def test_restart_reuses_ca_and_server_certificate(manager: TlsManager, tmp_path: Path) -> None:
    again = TlsManager(tmp_path / "tls", HOSTNAME)
    again.load()
    assert again.info().sha256 == manager.info().sha256
    assert again.ca_pem() == manager.ca_pem()


def test_hostname_change_reissues_server_certificate_only(
    manager: TlsManager, tmp_path: Path
) -> None:
    renamed = TlsManager(tmp_path / "tls", "Other.Example.TEST.")
    renamed.load()
    assert renamed.info().sha256 != manager.info().sha256
    assert set(renamed.info().san_dns_names) == {"other.example.test", "localhost"}
    assert renamed.ca_pem() == manager.ca_pem()


def test_near_expiry_reissues_server_certificate_only(manager: TlsManager, tmp_path: Path) -> None:
    later = NOW + 380 * DAY  # within 30 days of the 397-day lifetime
    aged = TlsManager(tmp_path / "tls", HOSTNAME, clock=lambda: later)
    aged.load()
    assert aged.info().sha256 != manager.info().sha256
    assert aged.info().not_after > later + 300 * DAY
    assert aged.ca_pem() == manager.ca_pem()


# --- real handshakes ---------------------------------------------------------------


def test_server_context_is_one_object_with_a_tls12_floor(manager: TlsManager) -> None:
    assert manager.server_context() is manager.server_context()
    assert manager.server_context().minimum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: v.name)
@pytest.mark.parametrize("name", ["localhost", HOSTNAME])
async def test_handshake_presents_the_current_certificate(
    manager: TlsManager, listener: Listener, name: str, version: ssl.TLSVersion
) -> None:
    connection = await connect(listener.port, _client_context(manager.ca_pem(), version), name)
    await connection.close()

    assert connection.peer_sha256 == manager.info().sha256
    assert connection.version == version.name.replace("v1_", "v1.")
    assert listener.server_names == [name]
    der = connection.writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    eku = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(
        x509.ExtendedKeyUsage
    )
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku.value


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: v.name)
async def test_handshake_by_ip_without_sni(
    manager: TlsManager, listener: Listener, version: ssl.TLSVersion
) -> None:
    # Python sends no SNI for an IP literal (RFC 6066 section 3) and checks the IP SAN.
    context = _client_context(manager.ca_pem(), version)
    sha256 = await peer_sha256(listener.port, context, "127.0.0.1")
    assert sha256 == manager.info().sha256
    assert listener.server_names == [None]


async def test_client_context_trusts_the_local_ca(manager: TlsManager, listener: Listener) -> None:
    sha256 = await peer_sha256(listener.port, manager.client_context(), "localhost")
    assert sha256 == manager.info().sha256
    with pytest.raises(ssl.SSLCertVerificationError):
        await peer_sha256(listener.port, ssl.create_default_context(), "localhost")


# --- hot swap -------------------------------------------------------------------


@pytest.mark.parametrize("version", TLS_VERSIONS, ids=lambda v: v.name)
async def test_install_swaps_the_certificate_of_a_running_listener(
    manager: TlsManager, listener: Listener, version: ssl.TLSVersion
) -> None:
    local_ca, local_sha256 = manager.ca_pem(), manager.info().sha256
    before = await connect(listener.port, _client_context(local_ca, version), "localhost")
    assert before.peer_sha256 == local_sha256
    # RSA after the local EC key: TLS 1.2 must switch cipher family mid-flight too.
    upload = make_chain(
        NAMES, leaf_key=rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    info = manager.install(upload.chain_pem, upload.key_pem)

    assert (info.sha256, info.is_uploaded, info.is_self_signed_local) == (
        upload.sha256,
        True,
        False,
    )
    assert manager.info() == info
    assert manager.ca_pem() == pem(upload.root)
    after = await peer_sha256(listener.port, _client_context(manager.ca_pem(), version), HOSTNAME)
    assert after == upload.sha256
    with pytest.raises(ssl.SSLCertVerificationError):
        await peer_sha256(listener.port, _client_context(local_ca, version), "localhost")
    # Same listener throughout, and the connection made before the swap lives on.
    assert listener.server.is_serving()
    assert listener.server.sockets[0].getsockname()[1] == listener.port
    assert await before.echo(b"still here\r\n") == b"still here\r\n"
    await before.close()


async def test_starttls_upgrade_follows_the_swap(manager: TlsManager) -> None:
    # A plain listener that upgrades in place, as SMTP/IMAP/POP3 STARTTLS do.
    server = await asyncio.start_server(
        _line_echo(manager.server_context()), host="127.0.0.1", port=0
    )
    port = server.sockets[0].getsockname()[1]

    async def starttls_sha256() -> str:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        connection = Connection(reader, writer)
        assert await connection.echo(b"STARTTLS\r\n") == b"220 go ahead\r\n"
        await writer.start_tls(manager.client_context(), server_hostname="localhost")
        assert await connection.echo(b"ping\r\n") == b"ping\r\n"
        await connection.close()
        return connection.peer_sha256

    try:
        assert await starttls_sha256() == manager.info().sha256
        upload = make_chain(NAMES)
        manager.install(upload.chain_pem, upload.key_pem)
        assert await starttls_sha256() == upload.sha256
    finally:
        server.close()
        await server.wait_closed()


async def test_remove_uploaded_returns_to_the_local_certificate(
    manager: TlsManager, listener: Listener
) -> None:
    local_ca, local_sha256 = manager.ca_pem(), manager.info().sha256
    upload = make_chain(NAMES)
    manager.install(upload.chain_pem, upload.key_pem)

    info = manager.remove_uploaded()

    assert (info.sha256, info.is_uploaded) == (local_sha256, False)
    assert manager.ca_pem() == local_ca
    assert await peer_sha256(listener.port, manager.client_context(), "localhost") == local_sha256
    with pytest.raises(errors.NotFound):
        manager.remove_uploaded()


def test_restart_keeps_the_uploaded_certificate(manager: TlsManager, tmp_path: Path) -> None:
    upload = make_chain(NAMES)
    installed = manager.install(upload.chain_pem, upload.key_pem)
    again = TlsManager(tmp_path / "tls", HOSTNAME)
    again.load()
    assert (again.info().sha256, again.info().is_uploaded) == (upload.sha256, True)
    assert again.ca_pem() == pem(upload.root)
    assert installed.uploaded_at is not None
    assert again.info().uploaded_at == installed.uploaded_at


def test_ca_info_describes_the_certificate_to_trust(manager: TlsManager) -> None:
    local = manager.ca_info()
    ca = x509.load_pem_x509_certificate(manager.ca_pem())
    assert (local.subject, local.is_uploaded, local.uploaded_at) == (
        ca.subject.rfc4514_string(),
        False,
        None,
    )
    assert local.sha256 == fingerprint(ca)
    assert manager.info().uploaded_at is None

    upload = make_chain(NAMES)
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    manager.install(upload.chain_pem, upload.key_pem)
    uploaded = manager.ca_info()
    assert (uploaded.subject, uploaded.is_uploaded) == (f"CN={ROOT_CA}", True)
    assert uploaded.sha256 == fingerprint(upload.root)
    stamp = manager.info().uploaded_at
    assert stamp is not None and before - DAY / 24 < stamp <= dt.datetime.now(dt.UTC)


def test_a_certificate_given_twice_is_kept_once(manager: TlsManager) -> None:
    # Operators paste the root at the end of the chain and again as "the CA".
    upload = make_chain(NAMES)
    chain = upload.chain_pem + b"\n" + pem(upload.root, upload.issuing)
    info = manager.install(chain, upload.key_pem)
    assert info.sha256 == upload.sha256
    assert manager.ca_pem() == pem(upload.root)


# --- rejected uploads --------------------------------------------------------------


def _garbage_chain() -> tuple[bytes, bytes]:
    return b"this is not a certificate", make_chain(NAMES).key_pem


def _garbage_key() -> tuple[bytes, bytes]:
    key = b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
    return make_chain(NAMES).chain_pem, key


def _encrypted_key() -> tuple[bytes, bytes]:
    upload = make_chain(NAMES)
    return upload.chain_pem, key_pem(upload.leaf_key, password=b"secret")


def _mismatched_key() -> tuple[bytes, bytes]:
    return make_chain(NAMES).chain_pem, key_pem(new_key())


def _expired() -> tuple[bytes, bytes]:
    upload = make_chain(NAMES, not_before=NOW - 90 * DAY, not_after=NOW - DAY)
    return upload.chain_pem, upload.key_pem


def _not_yet_valid() -> tuple[bytes, bytes]:
    upload = make_chain(NAMES, not_before=NOW + DAY, not_after=NOW + 90 * DAY)
    return upload.chain_pem, upload.key_pem


def _unrelated_issuer() -> tuple[bytes, bytes]:
    upload, other = make_chain(NAMES), make_chain(NAMES)
    stranger = issue("Stranger CA", new_key(), ca=True)
    return pem(upload.leaf, stranger, other.root), upload.key_pem


def _forged_issuer() -> tuple[bytes, bytes]:
    # Same name as the real issuing CA, different key: names link, signature doesn't.
    upload = make_chain(NAMES)
    impostor_key = new_key()
    impostor = issue(ISSUING_CA, impostor_key, ROOT_CA, impostor_key, ca=True)
    return pem(upload.leaf, impostor), upload.key_pem


def _expired_intermediate() -> tuple[bytes, bytes]:
    upload = make_chain(NAMES)
    old_key = new_key()
    leaf = issue(HOSTNAME, upload.leaf_key, "Old Issuing CA", old_key, hosts=NAMES, ips=IPS)
    old = issue(
        "Old Issuing CA",
        old_key,
        ROOT_CA,
        new_key(),
        ca=True,
        not_before=NOW - 90 * DAY,
        not_after=NOW - DAY,
    )
    return pem(leaf, old), upload.key_pem


def _issuer_is_not_a_ca() -> tuple[bytes, bytes]:
    upload = make_chain(NAMES)
    other_key = new_key()
    leaf = issue(HOSTNAME, upload.leaf_key, "Some Server", other_key, hosts=NAMES, ips=IPS)
    server = issue("Some Server", other_key, ROOT_CA, new_key(), hosts=NAMES, ips=IPS)
    return pem(leaf, server), upload.key_pem


def _client_only_leaf() -> tuple[bytes, bytes]:
    key = new_key()
    cert = issue(HOSTNAME, key, usages=[ExtendedKeyUsageOID.CLIENT_AUTH], not_after=NOW + DAY)
    return pem(cert), key_pem(key)


def _weak_key() -> tuple[bytes, bytes]:
    # Well-formed and linked, but below OpenSSL's security level: the last gate.
    upload = make_chain(NAMES, leaf_key=ec.generate_private_key(ec.SECP192R1()))
    return upload.chain_pem, upload.key_pem


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (_garbage_chain, r"certificate chain is not valid PEM"),
        (_garbage_key, r"private key is not valid PEM"),
        (_encrypted_key, r"private key is encrypted"),
        (_mismatched_key, r"private key does not match the certificate"),
        (_expired, r"certificate has expired"),
        (_not_yet_valid, r"certificate is not yet valid"),
        (_unrelated_issuer, rf"chain is broken: certificate 1 was issued by 'CN={ISSUING_CA}'"),
        (_forged_issuer, r"chain is broken: the signature on certificate 1 does not verify"),
        (_expired_intermediate, r"certificate 2 of the chain has expired: its validity ended"),
        (_issuer_is_not_a_ca, r"broken: certificate 2 \('CN=Some Server'\) is not a CA"),
        (_client_only_leaf, r"not for TLS servers: its extended key usage lacks serverAuth"),
        (_weak_key, r"TLS library refused the certificate or key: ee key too small"),
    ],
    ids=lambda v: getattr(v, "__name__", "").strip("_") or None,
)
async def test_install_rejects_bad_material_and_keeps_the_current_certificate(
    manager: TlsManager,
    listener: Listener,
    tmp_path: Path,
    make: Callable[[], tuple[bytes, bytes]],
    message: str,
) -> None:
    chain, key = make()
    before, files = manager.info(), sorted((tmp_path / "tls").iterdir())

    with pytest.raises(errors.Invalid, match=message):
        manager.install(chain, key)

    assert manager.info() == before
    assert sorted((tmp_path / "tls").iterdir()) == files
    assert await peer_sha256(listener.port, manager.client_context(), "localhost") == before.sha256


# --- an independent client ---------------------------------------------------------


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl binary not installed")
@pytest.mark.parametrize("sni", [True, False], ids=["sni", "no-sni"])
async def test_openssl_s_client_verifies_before_and_after_a_swap(
    manager: TlsManager, listener: Listener, tmp_path: Path, sni: bool
) -> None:
    async def s_client_sha256() -> str:
        ca_file = tmp_path / "trust.pem"
        ca_file.write_bytes(manager.ca_pem())
        name = ["-servername", "localhost", "-verify_hostname", "localhost"]
        args = [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{listener.port}",
            "-CAfile",
            str(ca_file),
            "-verify_return_error",
            *(name if sni else ["-noservername", "-verify_ip", "127.0.0.1"]),
        ]
        # In a thread: the listener runs on this loop and must keep serving.
        done = await asyncio.to_thread(
            subprocess.run, args, input=b"", capture_output=True, timeout=TIMEOUT, check=False
        )
        out = done.stdout.decode()
        assert done.returncode == 0, done.stderr.decode()
        assert "Verify return code: 0 (ok)" in out
        found = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", out, re.S)
        assert found is not None
        leaf = x509.load_pem_x509_certificate(found.group().encode())
        return fingerprint(leaf)

    assert await s_client_sha256() == manager.info().sha256
    upload = make_chain(NAMES)
    manager.install(upload.chain_pem, upload.key_pem)
    assert await s_client_sha256() == upload.sha256
    assert listener.server_names == (["localhost"] * 2 if sni else [None] * 2)
