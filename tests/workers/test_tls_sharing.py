"""A node follows the certificate another node of its cluster shared through the database.

What another node's ``PUT /system/tls`` leaves behind is written here with the
same store function; this node's sync then decides what its listeners serve,
checked with real STARTTLS handshakes.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl

import httpx
from cryptography import x509

from certs import DAY, NOW, fingerprint, make_chain
from mailcue_server.app import MailcueServer
from mailcue_server.store import tls_uploads

TIMEOUT = 10


def presented(port: int) -> str:
    """The fingerprint of the leaf a STARTTLS client is shown."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as client:
        client.starttls(context=context)
        der: bytes = client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
    return fingerprint(x509.load_der_x509_certificate(der))


async def test_a_shared_upload_is_served_then_a_removal_is_followed(
    server: MailcueServer, http: httpx.AsyncClient
) -> None:
    assert server.tls_sync is not None and server.services is not None
    port = server.port("smtp")
    local = await asyncio.to_thread(presented, port)
    chain = make_chain(("localhost",))
    uploaded_at = NOW - 3 * DAY  # when the other node took it
    await tls_uploads.save(
        chain.chain_pem, chain.key_pem, chain.sha256, server.services.secret_key, uploaded_at
    )
    assert await server.tls_sync.run_once() is True
    assert await asyncio.to_thread(presented, port) == chain.sha256
    shown = (await http.get("/api/v1/system/certificate")).json()
    assert (shown["fingerprint_sha256"], shown["uploaded_at"]) == (
        chain.sha256,
        uploaded_at.isoformat().replace("+00:00", "Z"),
    )
    assert await server.tls_sync.run_once() is False  # already serving it

    await tls_uploads.forget()
    assert await server.tls_sync.run_once() is True
    assert await asyncio.to_thread(presented, port) == local
    assert await server.tls_sync.run_once() is False


async def test_a_shared_upload_this_node_cannot_use_leaves_it_serving_what_it_had(
    server: MailcueServer,
) -> None:
    assert server.tls_sync is not None and server.services is not None
    port = server.port("smtp")
    before = await asyncio.to_thread(presented, port)
    # Expired since it was shared: refused (and not retried at every sync).
    expired = make_chain(("localhost",), not_before=NOW - 90 * DAY, not_after=NOW - DAY)
    await tls_uploads.save(
        expired.chain_pem, expired.key_pem, expired.sha256, server.services.secret_key
    )
    assert await server.tls_sync.run_once() is False
    assert await asyncio.to_thread(presented, port) == before
    # Sealed by a node with another MAILCUE_SECRET_KEY: the key cannot be opened.
    other = make_chain(("localhost",))
    await tls_uploads.save(other.chain_pem, other.key_pem, other.sha256, "another-secret" * 4)
    assert await server.tls_sync.run_once() is False
    assert await asyncio.to_thread(presented, port) == before
    # A good one later is taken.
    good = make_chain(("localhost",))
    await tls_uploads.save(good.chain_pem, good.key_pem, good.sha256, server.services.secret_key)
    assert await server.tls_sync.run_once() is True
    assert await asyncio.to_thread(presented, port) == good.sha256
    await tls_uploads.forget()
    assert await server.tls_sync.run_once() is True
