"""Two ``mailcue serve`` nodes sharing PostgreSQL and Redis act as one server.

Mail that node A receives over SMTP is announced on node B's SSE stream
within a second (Redis pub/sub), read back over node B's IMAP and listed by
node B's REST API (the shared database).
"""

from __future__ import annotations

import asyncio
import imaplib
import json
import secrets
import smtplib
import ssl
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509

from certs import fingerprint, make_chain, pem
from live_events import LATENCY, WAIT, parse_sse_block, smtp_send_to_port, sse_stream_at
from processes import ServeProcess, cli_env, mailcue
from services import fresh_postgres_database, redis_or_skip
from waiting import eventually

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

ADMIN_PASSWORD = "two-nodes-admin-password"
MAILBOX_PASSWORD = "two-nodes-mailbox-password"


async def _next_event(lines: AsyncIterator[str], kind: str) -> tuple[dict[str, Any], float]:
    """Read SSE blocks until one of ``kind``; returns its data object and arrival time."""
    block: list[str] = []
    async for line in lines:
        if line:
            block.append(line)
            continue
        parsed, block = parse_sse_block(block), []
        if parsed.event == kind:
            payload = json.loads("\n".join(parsed.data))
            assert isinstance(payload, dict)
            return payload, time.monotonic()
    raise AssertionError(f"the stream ended before {kind}")


def _imap_fetch(port: int, address: str) -> bytes:
    client = imaplib.IMAP4("127.0.0.1", port, timeout=WAIT)
    try:
        client.login(address, MAILBOX_PASSWORD)
        typ, _ = client.select("INBOX", readonly=True)
        assert typ == "OK"
        typ, data = client.uid("FETCH", "1", "(BODY.PEEK[])")
        assert typ == "OK"
        first = data[0]
        assert isinstance(first, tuple), data
        raw: bytes = first[1]
        return raw
    finally:
        client.logout()


async def test_mail_into_node_a_is_announced_and_served_by_node_b(tmp_path: Path) -> None:
    redis_url = await redis_or_skip()
    address = f"two-nodes-{secrets.token_hex(4)}@mailcue.local"
    async with fresh_postgres_database() as database_url:
        shared = {
            "MAILCUE_DATABASE_URL": database_url,
            "MAILCUE_REDIS_URL": redis_url,
            "MAILCUE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            # One secret for the cluster, as behind a load balancer.
            "MAILCUE_SECRET_KEY": secrets.token_urlsafe(48),
        }
        env_a = cli_env(tmp_path / "a", **shared)
        env_b = cli_env(tmp_path / "b", **shared)
        created = mailcue(
            "create-mailbox",
            "--address",
            address,
            "--password",
            MAILBOX_PASSWORD,
            env=env_a,
            cwd=tmp_path,
        )
        assert created.returncode == 0, created.stderr
        with ServeProcess(env_a, tmp_path) as node_a, ServeProcess(env_b, tmp_path) as node_b:
            node_a.wait_listening()
            url_b = node_b.wait_listening()
            async with httpx.AsyncClient(
                base_url=url_b, timeout=httpx.Timeout(WAIT, read=None)
            ) as http:
                login = await http.post(
                    "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
                )
                assert login.status_code == 200, login.text
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                async with http.stream(
                    "GET", "/api/v1/events/stream", headers=headers, params={"mailbox": address}
                ) as stream:
                    assert stream.status_code == 200
                    lines = stream.aiter_lines()
                    async with asyncio.timeout(WAIT):
                        assert await anext(lines) == ": subscribed"
                    started = time.monotonic()
                    sent = await smtp_send_to_port(
                        node_a.listener_port("smtp"), address, "via node A"
                    )
                    async with asyncio.timeout(WAIT):
                        event, arrived = await _next_event(lines, "email.received")
                assert arrived - started < LATENCY, f"took {arrived - started:.3f} s"
                assert event["mailbox"] == address and event["subject"] == "via node A"
                assert event["uid"] == 1 and event["folder"] == "INBOX"

                raw = await asyncio.to_thread(_imap_fetch, node_b.listener_port("imap"), address)
                assert raw.endswith(sent)  # byte for byte, after our Received header

                listed = await http.get(
                    "/api/v1/emails", headers=headers, params={"mailbox": address}
                )
                assert listed.status_code == 200, listed.text
                body = listed.json()
                assert body["total"] == 1
                assert [e["subject"] for e in body["emails"]] == ["via node A"]
            assert node_b.terminate() == 0, node_b.output
            assert node_a.terminate() == 0, node_a.output


async def test_a_client_resumes_on_node_b_with_the_id_node_a_gave_it(tmp_path: Path) -> None:
    """Event ids come from Redis, so any node replays what a client missed after one."""
    redis_url = await redis_or_skip()
    address = f"resume-{secrets.token_hex(4)}@mailcue.local"
    async with fresh_postgres_database() as database_url:
        shared = {
            "MAILCUE_DATABASE_URL": database_url,
            "MAILCUE_REDIS_URL": redis_url,
            "MAILCUE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MAILCUE_SECRET_KEY": secrets.token_urlsafe(48),
        }
        env_a, env_b = cli_env(tmp_path / "a", **shared), cli_env(tmp_path / "b", **shared)
        with ServeProcess(env_a, tmp_path) as node_a, ServeProcess(env_b, tmp_path) as node_b:
            url_a, url_b = node_a.wait_listening(), node_b.wait_listening()
            smtp_a, smtp_b = node_a.listener_port("smtp"), node_b.listener_port("smtp")
            async with httpx.AsyncClient(base_url=url_a, timeout=WAIT) as http:
                login = await http.post(
                    "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
                )
                assert login.status_code == 200, login.text
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            # Filtered to this test's mailbox: other test runs may share the Redis server.
            params = {"mailbox": address, "types": "email.received"}
            async with sse_stream_at(url_a, headers, **params) as feed:
                await smtp_send_to_port(smtp_a, address, "seen on A")
                seen = await feed.next()
            await smtp_send_to_port(smtp_a, address, "missed, into A")
            await smtp_send_to_port(smtp_b, address, "missed, into B")

            resume = {**headers, "Last-Event-ID": seen.id}
            async with sse_stream_at(url_b, resume, **params) as feed:
                replayed = [await feed.next(), await feed.next()]
                await smtp_send_to_port(smtp_a, address, "live on B")
                live = await feed.next()
                assert feed.pending() == []
            assert [e.details["subject"] for e in (*replayed, live)] == [
                "missed, into A",
                "missed, into B",
                "live on B",
            ]
            ids = [seen.id, *(e.id for e in replayed), live.id]
            assert len(set(ids)) == 4
            assert node_b.terminate() == 0, node_b.output
            assert node_a.terminate() == 0, node_a.output


def _smtp_facts(port: int, context: ssl.SSLContext) -> tuple[str, str]:
    """The leaf fingerprint a STARTTLS client sees, and the SIZE the server advertises."""
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as client:
        client.starttls(context=context)
        client.ehlo("client.test")
        der: bytes = client.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
        return fingerprint(x509.load_der_x509_certificate(der)), client.esmtp_features["size"]


async def test_a_certificate_and_size_limit_set_on_node_a_are_used_by_node_b(
    tmp_path: Path,
) -> None:
    chain = make_chain(("localhost",))
    trusting = ssl.create_default_context(cadata=pem(chain.root).decode())
    trusting.check_hostname = False  # by IP; the fingerprint says which certificate it is
    anything = ssl.create_default_context()
    anything.check_hostname, anything.verify_mode = False, ssl.CERT_NONE
    async with fresh_postgres_database() as database_url:
        shared = {
            "MAILCUE_DATABASE_URL": database_url,
            "MAILCUE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MAILCUE_SECRET_KEY": secrets.token_urlsafe(48),
            "MAILCUE_NODE_SYNC_INTERVAL": "0.2",
        }
        env_a, env_b = cli_env(tmp_path / "a", **shared), cli_env(tmp_path / "b", **shared)
        with ServeProcess(env_a, tmp_path) as node_a, ServeProcess(env_b, tmp_path) as node_b:
            url_a = node_a.wait_listening()
            node_b.wait_listening()
            smtp_b = node_b.listener_port("smtp")
            local_b, _ = await asyncio.to_thread(_smtp_facts, smtp_b, anything)
            async with httpx.AsyncClient(base_url=url_a, timeout=WAIT) as http:
                login = await http.post(
                    "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
                )
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                body = {
                    "certificate": pem(chain.leaf, chain.issuing).decode(),
                    "private_key": chain.key_pem.decode(),
                    "ca_certificate": pem(chain.root).decode(),
                }
                uploaded = await http.put("/api/v1/system/tls", headers=headers, json=body)
                assert uploaded.status_code == 200, uploaded.text
                sized = await http.put(
                    "/api/v1/system/settings", headers=headers, json={"max_message_size": 5000}
                )
                assert sized.status_code == 200, sized.text

                async def b_serves_the_upload() -> bool:
                    try:
                        facts = await asyncio.to_thread(_smtp_facts, smtp_b, trusting)
                    except ssl.SSLCertVerificationError:
                        return False  # still its own certificate, which `trusting` refuses
                    return facts == (chain.sha256, "5000")

                await eventually(b_serves_the_upload, WAIT)  # verified against the uploaded root

                removed = await http.delete("/api/v1/system/tls", headers=headers)
                assert removed.status_code == 200, removed.text

                async def b_serves_its_own_again() -> bool:
                    seen, _ = await asyncio.to_thread(_smtp_facts, smtp_b, anything)
                    return seen == local_b

                await eventually(b_serves_its_own_again, WAIT)


def _rcpt_code(port: int, address: str) -> int:
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT) as client:
        client.ehlo("client.test")
        client.mail("tester@client.test")
        return client.rcpt(address)[0]


async def test_the_catch_all_turned_off_on_node_a_is_off_on_node_b(tmp_path: Path) -> None:
    async with fresh_postgres_database() as database_url:
        shared = {
            "MAILCUE_DATABASE_URL": database_url,
            "MAILCUE_ADMIN_PASSWORD": ADMIN_PASSWORD,
            "MAILCUE_SECRET_KEY": secrets.token_urlsafe(48),
            "MAILCUE_NODE_SYNC_INTERVAL": "0.2",
        }
        env_a, env_b = cli_env(tmp_path / "a", **shared), cli_env(tmp_path / "b", **shared)
        with ServeProcess(env_a, tmp_path) as node_a, ServeProcess(env_b, tmp_path) as node_b:
            url_a = node_a.wait_listening()
            node_b.wait_listening()
            smtp_b = node_b.listener_port("smtp")
            unknown = f"unknown-{secrets.token_hex(3)}@mailcue.local"
            await smtp_send_to_port(smtp_b, unknown, "first mail makes the mailbox")
            async with httpx.AsyncClient(base_url=url_a, timeout=WAIT) as http:
                login = await http.post(
                    "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
                )
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                off = await http.put(
                    "/api/v1/system/settings", headers=headers, json={"catch_all_enabled": False}
                )
                assert off.status_code == 200, off.text

                async def b_refuses(address: str) -> bool:
                    return await asyncio.to_thread(_rcpt_code, smtp_b, address) == 550

                await eventually(lambda: b_refuses(f"new-{secrets.token_hex(3)}@x.test"), WAIT)
                # The mailbox node B made for the first mail still takes mail.
                assert await asyncio.to_thread(_rcpt_code, smtp_b, unknown) == 250

                on = await http.put(
                    "/api/v1/system/settings", headers=headers, json={"catch_all_enabled": True}
                )
                assert on.status_code == 200, on.text

                async def b_accepts() -> bool:
                    return not await b_refuses(f"new-{secrets.token_hex(3)}@x.test")

                await eventually(b_accepts, WAIT)
            assert node_b.terminate() == 0, node_b.output
            assert node_a.terminate() == 0, node_a.output
