"""Serving the certificate shared through the database (``store.tls_uploads``) on this node."""

from __future__ import annotations

import asyncio
import logging

from mailcue_server import errors
from mailcue_server.store import tls_uploads
from mailcue_server.workers.tls.manager import TlsManager

log = logging.getLogger(__name__)


class SharedCertificateSync:
    """Installs the shared upload when it differs from what this node serves.

    A shared certificate this node cannot install (it expired since the
    upload, the secret differs) is reported once and the node keeps what it
    serves; a later upload is tried again.
    """

    def __init__(self, tls: TlsManager, server_secret: str) -> None:
        self._tls = tls
        self._secret = server_secret
        self._refused: str | None = None

    async def run_once(self) -> bool:
        """Follow the shared state once; returns whether this node's certificate changed."""
        wanted = await tls_uploads.wanted()
        serving = self._tls.info()
        if not wanted.shared:
            return False  # never shared: a node's own upload on disk stays
        if wanted.sha256 is None:
            if not serving.is_uploaded:
                return False
            await asyncio.to_thread(self._tls.remove_uploaded)
            log.info("the shared TLS certificate was removed: serving the local one")
            return True
        if serving.is_uploaded and serving.sha256 == wanted.sha256:
            return False
        if wanted.sha256 == self._refused:
            return False
        return await self._install(wanted.sha256)

    async def _install(self, sha256: str) -> bool:
        try:
            shared = await tls_uploads.load(self._secret)
        except ValueError:
            self._refused = sha256
            log.error("the shared TLS key was sealed under another MAILCUE_SECRET_KEY")
            return False
        if shared is None:  # removed between the two reads: the next run sees it
            return False
        try:
            await asyncio.to_thread(
                self._tls.install, shared.chain_pem, shared.key_pem, shared.uploaded_at
            )
        except errors.Invalid as refused:
            self._refused = shared.sha256
            log.error("cannot serve the shared TLS certificate %s: %s", shared.sha256, refused)
            return False
        log.info("serving the shared TLS certificate %s", shared.sha256)
        return True
