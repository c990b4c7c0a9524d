"""The TLS material of the mail listeners: files, SSL contexts and hot swap.

Owns one directory (``<data_dir>/tls/`` in production)::

    ca.pem, ca-key.pem            the local CA (the key is 0600)
    server.pem, server-key.pem    the local server certificate (the key is 0600)
    uploaded.pem                  an uploaded chain + key, if any (0600)

Every listener is created with the single context from
:meth:`TlsManager.server_context`. Its SNI callback hands each new handshake
to whichever inner context is current, so installing a certificate takes
effect on the next connection without restarting any listener.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from mailcue_server import errors
from mailcue_server.workers.tls import chain, local
from mailcue_server.workers.tls.chain import CertificateInfo

_log = logging.getLogger(__name__)

_CA_CERT = "ca.pem"
_CA_KEY = "ca-key.pem"
_SERVER_CERT = "server.pem"
_SERVER_KEY = "server-key.pem"
_UPLOADED = "uploaded.pem"
_PRIVATE = 0o600
_PUBLIC = 0o644


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class _Active:
    """The material new handshakes get: an inner context and the chain it serves."""

    context: ssl.SSLContext
    certs: tuple[x509.Certificate, ...]
    is_uploaded: bool
    uploaded_at: dt.datetime | None = None


class TlsManager:
    """Keeps the listeners' certificate: local CA by default, or an uploaded chain.

    Args:
        tls_dir: Directory that holds the keys and certificates; created if missing.
        hostname: The name clients connect to; the local certificate covers it
            plus ``localhost``, ``127.0.0.1`` and ``::1``.
        clock: Returns the current aware time; tests move it to exercise expiry.

    Raises:
        errors.ConfigError: ``hostname`` is empty or not a DNS name / IP address.
    """

    def __init__(
        self,
        tls_dir: Path,
        hostname: str,
        *,
        clock: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self._dir = tls_dir
        self._hostname = local.normalize_hostname(hostname)
        self._clock = clock
        # install/remove/load may run in worker threads; the handshake path only
        # reads self._active, whose assignment is atomic.
        self._lock = threading.Lock()
        self._outer: ssl.SSLContext | None = None
        self._active: _Active | None = None
        self._local_ca: x509.Certificate | None = None

    def load(self) -> None:
        """Create or renew the local CA and server cert, then serve the right one.

        Reuses what is on disk when it still fits: the server certificate is
        reissued (by the same CA) when the hostname changed or it is within
        30 days of expiry; the CA only when it is missing, broken or expiring.
        A persisted upload wins over the local certificate. Safe to call again
        (say daily) to renew without a restart.

        Raises:
            OSError: The directory cannot be created or written.
        """
        with self._lock:
            self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            ca = self._ensure_local(self._clock())
            self._local_ca = ca.cert
            self._activate(self._read_uploaded() or self._read_local())

    def server_context(self) -> ssl.SSLContext:
        """Return the one context every TLS listener and STARTTLS upgrade uses.

        Returns:
            The same object on every call; it follows :meth:`install` and
            :meth:`remove_uploaded` on its own.

        Raises:
            RuntimeError: :meth:`load` has not run yet.
        """
        if self._outer is None:
            raise RuntimeError("TlsManager.load() must run before server_context()")
        return self._outer

    def client_context(self) -> ssl.SSLContext:
        """Return a client context that trusts the local CA (and an uploaded chain's top).

        Raises:
            RuntimeError: :meth:`load` has not run yet.
        """
        anchors = {self._local_ca_pem(), self.ca_pem()}
        context = ssl.create_default_context(cadata="".join(p.decode() for p in anchors))
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        # An uploaded chain usually ends at an intermediate, not a root:
        # let it act as a trust anchor (the default from Python 3.13).
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        return context

    def info(self) -> CertificateInfo:
        """Describe the certificate new handshakes present.

        Raises:
            RuntimeError: :meth:`load` has not run yet.
        """
        active = self._current()
        return chain.describe(
            active.certs[0], is_uploaded=active.is_uploaded, uploaded_at=active.uploaded_at
        )

    def ca_info(self) -> CertificateInfo:
        """Describe the certificate :meth:`ca_pem` returns (the one clients should trust).

        Raises:
            RuntimeError: :meth:`load` has not run yet.
        """
        active = self._current()
        if active.is_uploaded:
            return chain.describe(
                active.certs[-1], is_uploaded=True, uploaded_at=active.uploaded_at
            )
        if self._local_ca is None:
            raise RuntimeError("TlsManager.load() must run first")
        return chain.describe(self._local_ca, is_uploaded=False)

    def ca_pem(self) -> bytes:
        """Return the PEM certificate clients should trust.

        Returns:
            The local CA, or the last certificate of an uploaded chain.

        Raises:
            RuntimeError: :meth:`load` has not run yet.
        """
        active = self._current()
        if active.is_uploaded:
            return active.certs[-1].public_bytes(serialization.Encoding.PEM)
        return self._local_ca_pem()

    def install(
        self, chain_pem: bytes, key_pem: bytes, uploaded_at: dt.datetime | None = None
    ) -> CertificateInfo:
        """Check, persist and start serving an uploaded chain.

        Args:
            chain_pem: PEM certificates, the server's own first, then each issuer.
            key_pem: The unencrypted PEM private key of the first certificate.
            uploaded_at: When it was uploaded, if not now (a chain another node
                took, installed here later).

        Returns:
            The description of the newly served certificate.

        Raises:
            errors.Invalid: The material is rejected; the current certificate
                stays in place. The message says what is wrong.
            RuntimeError: :meth:`load` has not run yet.
        """
        with self._lock:
            self._current()
            upload = chain.parse_upload(chain_pem, key_pem, self._clock())
            final = self._dir / _UPLOADED
            staged = final.with_name(f".{_UPLOADED}.new")
            _write(staged, upload.to_pem(), _PRIVATE)
            try:
                context = _inner_context(staged)
            except ssl.SSLError as exc:
                staged.unlink()
                # OpenSSL's reason codes (EE_KEY_TOO_SMALL, ...) read fine as words.
                reason = (exc.reason or str(exc)).lower().replace("_", " ")
                raise errors.Invalid(
                    f"the TLS library refused the certificate or key: {reason}"
                ) from exc
            os.replace(staged, final)
            if uploaded_at is not None:  # the file's time is the upload's, across restarts
                stamp = uploaded_at.timestamp()
                os.utime(final, (stamp, stamp))
            self._activate(
                _Active(
                    context=context,
                    certs=upload.certs,
                    is_uploaded=True,
                    uploaded_at=_modified_at(final),
                )
            )
            return self.info()

    def remove_uploaded(self) -> CertificateInfo:
        """Forget the uploaded chain and serve the local certificate again.

        Returns:
            The description of the local certificate now served.

        Raises:
            errors.NotFound: No uploaded certificate is installed.
            RuntimeError: :meth:`load` has not run yet.
        """
        with self._lock:
            self._current()
            try:
                (self._dir / _UPLOADED).unlink()
            except FileNotFoundError as exc:
                raise errors.NotFound("no uploaded TLS certificate is installed") from exc
            self._local_ca = self._ensure_local(self._clock()).cert
            self._activate(self._read_local())
            return self.info()

    def _current(self) -> _Active:
        if self._active is None:
            raise RuntimeError("TlsManager.load() must run first")
        return self._active

    def _local_ca_pem(self) -> bytes:
        if self._local_ca is None:
            raise RuntimeError("TlsManager.load() must run first")
        return self._local_ca.public_bytes(serialization.Encoding.PEM)

    def _activate(self, active: _Active) -> None:
        self._active = active
        if self._outer is None:
            outer = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            # Pinned on each connection when it is created, before the callback
            # swaps contexts, so it must be set here (and not only on inners).
            outer.minimum_version = ssl.TLSVersion.TLSv1_2
            # No certificate on the outer context on purpose: should the
            # callback ever not run, the handshake fails instead of quietly
            # serving a stale certificate.
            outer.sni_callback = self._select_context
            self._outer = outer

    def _select_context(
        self, ssl_object: ssl.SSLObject, server_name: str | None, outer: ssl.SSLContext
    ) -> None:
        # OpenSSL runs the servername callback on every ClientHello, with or
        # without SNI (server_name is None when a client connects by IP), so
        # this is the one place each new handshake picks up the current material.
        ssl_object.context = self._current().context

    def _ensure_local(self, now: dt.datetime) -> local.Issued:
        """Return the local CA, first (re)writing it and the server cert if unfit."""
        ca = self._read_issued(_CA_KEY, _CA_CERT)
        if ca is None or not local.ca_is_fit(ca, now):
            _log.info("creating a local TLS certificate authority in %s", self._dir)
            ca = local.issue_ca(now)
            self._write_issued(ca, _CA_KEY, _CA_CERT)
        server = self._read_issued(_SERVER_KEY, _SERVER_CERT)
        if server is None or not local.server_is_fit(server, ca.cert, self._hostname, now):
            _log.info("issuing a local TLS certificate for %s", self._hostname)
            self._write_issued(
                local.issue_server(ca, self._hostname, now), _SERVER_KEY, _SERVER_CERT
            )
        return ca

    def _read_local(self) -> _Active:
        cert = x509.load_pem_x509_certificate((self._dir / _SERVER_CERT).read_bytes())
        context = _inner_context(self._dir / _SERVER_CERT, self._dir / _SERVER_KEY)
        return _Active(context=context, certs=(cert,), is_uploaded=False)

    def _read_uploaded(self) -> _Active | None:
        path = self._dir / _UPLOADED
        if not path.exists():
            return None
        _tighten(path)
        try:
            certs = chain.read_chain(path.read_bytes())
            context = _inner_context(path)
        except (errors.Invalid, ssl.SSLError, OSError):
            # Keep the mail listeners up on the local certificate rather than
            # refusing to start; the operator sees this and re-uploads.
            _log.exception("ignoring unreadable uploaded TLS certificate %s", path)
            return None
        if certs[0].not_valid_after_utc < self._clock():
            _log.warning(
                "the uploaded TLS certificate expired on %s", certs[0].not_valid_after_utc
            )
        return _Active(
            context=context, certs=certs, is_uploaded=True, uploaded_at=_modified_at(path)
        )

    def _read_issued(self, key_name: str, cert_name: str) -> local.Issued | None:
        key_path, cert_path = self._dir / key_name, self._dir / cert_name
        try:
            key_pem, cert_pem = key_path.read_bytes(), cert_path.read_bytes()
        except FileNotFoundError:
            return None
        _tighten(key_path)
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
            cert = x509.load_pem_x509_certificate(cert_pem)
        except (ValueError, TypeError):
            _log.warning("replacing unreadable TLS material %s / %s", key_path, cert_path)
            return None
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            return None
        return local.Issued(key=key, cert=cert)

    def _write_issued(self, issued: local.Issued, key_name: str, cert_name: str) -> None:
        # Key first: if we crash in between, the pair no longer matches and the
        # next load() reissues instead of serving a mismatched pair.
        _write(self._dir / key_name, chain.private_key_pem(issued.key), _PRIVATE)
        _write(
            self._dir / cert_name, issued.cert.public_bytes(serialization.Encoding.PEM), _PUBLIC
        )


def _inner_context(cert_path: Path, key_path: Path | None = None) -> ssl.SSLContext:
    """Build the context one certificate is served from (never given to listeners)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_path, key_path)
    return context


def _write(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` atomically with ``data``, created with ``mode`` from the start."""
    staged = path.with_name(f".{path.name}.tmp")
    staged.unlink(missing_ok=True)
    # O_EXCL + mode at creation: the key is never readable by others, not even
    # for the instant a chmod-after-write would leave open.
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "wb") as file:
        os.fchmod(fd, mode)  # the umask may have removed bits we want (0644)
        file.write(data)
        file.flush()
        os.fsync(fd)
    os.replace(staged, path)


def _modified_at(path: Path) -> dt.datetime:
    """When ``path`` was last written: an upload's install time, kept across restarts."""
    return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)


def _tighten(path: Path) -> None:
    """Drop group/other access from a key file someone loosened by hand."""
    if path.stat().st_mode & 0o077:
        _log.warning("restricting permissions of %s to 0600", path)
        path.chmod(_PRIVATE)
