"""The official client SDK (PyPI ``mailcue``) works against our server unchanged."""

from __future__ import annotations

import asyncio
import secrets

import httpx
from mailcue import AsyncMailcue, Mailcue
from mailcue.exceptions import AuthenticationError, PermissionDeniedError

from accounts import admin, new_api_key, new_user


async def test_sdk_authenticates_with_an_api_key(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    key = (await new_api_key(http, owner, name="sdk"))["key"]
    base_url = str(http.base_url).rstrip("/")
    async with AsyncMailcue(api_key=key, base_url=base_url, max_retries=0) as client:
        health = await client.system.health()
        assert health.status == "healthy"
        keys = await client.api_keys.list()
        assert [k.name for k in keys] == ["sdk"]
        created = await client.api_keys.create("from-sdk", scopes=["email:read"])
        assert created.key.startswith("mc_")
        updated = await client.api_keys.update(created.id, name="renamed")
        assert updated.name == "renamed" and updated.scopes == ["email:read"]
        await client.api_keys.delete(created.id)

    # The synchronous client too (run in a thread: the server shares this loop).
    def sync_calls() -> str | None:
        with Mailcue(api_key=key, base_url=base_url, max_retries=0) as client:
            return client.system.health().status

    assert await asyncio.to_thread(sync_calls) == "healthy"


async def test_sdk_maps_our_errors_to_its_exceptions(http: httpx.AsyncClient) -> None:
    owner = await new_user(http)
    key = (await new_api_key(http, owner, scopes=["email:read"]))["key"]
    base_url = str(http.base_url).rstrip("/")
    async with AsyncMailcue(api_key=key, base_url=base_url, max_retries=0) as client:
        try:
            await client.api_keys.list()
        except PermissionDeniedError as exc:
            assert exc.scope == "apikey:manage"
        else:
            raise AssertionError("a key without apikey:manage listed keys")
    async with AsyncMailcue(api_key="mc_wrong", base_url=base_url, max_retries=0) as client:
        try:
            await client.api_keys.list()
        except AuthenticationError:
            pass
        else:
            raise AssertionError("a made-up key was accepted")


async def test_sdk_mail_scenario(http: httpx.AsyncClient) -> None:
    """Create mailbox, inject, list, get, raw, send, wait_for, delete: the SDK unchanged."""
    boss = await admin(http)
    key = (await new_api_key(http, boss, name="sdk-mail"))["key"]
    base_url = str(http.base_url).rstrip("/")
    local = f"sdk{secrets.token_hex(3)}"
    async with AsyncMailcue(api_key=key, base_url=base_url, max_retries=0) as client:
        box = await client.mailboxes.create(
            local, "sdk-password-1", domain="example.test", display_name="SDK Box"
        )
        assert box.address == f"{local}@example.test"
        stored = await client.emails.inject(
            mailbox=box.address,
            from_address="shop@example.org",
            to_addresses=[box.address],
            subject="Your order",
            html_body="<p>Thanks for <b>ordering</b></p>",
            text_body="Thanks for ordering",
            headers={"X-Order": "1234"},
        )
        listing = await client.emails.list(mailbox=box.address)
        assert listing.total == 1 and listing.emails[0].uid == stored["uid"]
        detail = await client.emails.get(stored["uid"], mailbox=box.address)
        assert detail.subject == "Your order"
        assert detail.text_body == "Thanks for ordering\n"
        assert detail.raw_headers["X-Order"] == "1234"
        raw = await client.emails.get_raw(stored["uid"], mailbox=box.address)
        assert b"Subject: Your order\r\n" in raw
        sent = await client.emails.send(
            from_=box.address,
            to=[box.address],
            subject="Note to self",
            text="sent through the SDK",
        )
        assert sent.message_id
        [arrived] = await client.emails.wait_for(
            mailbox=box.address, subject="Note to self", timeout=5, interval=0.1
        )
        assert arrived.from_address == box.address
        mailboxes = await client.mailboxes.list()
        mine = next(m for m in mailboxes.mailboxes if m.address == box.address)
        assert mine.email_count == 3  # the injected mail, the delivered copy and the Sent copy
        stats = await client.mailboxes.stats(box.id)
        assert {f.name: f.message_count for f in stats.folders}["Sent"] == 1
        await client.emails.delete(stored["uid"], mailbox=box.address)
        after = await client.emails.list(mailbox=box.address)
        assert [e.subject for e in after.emails] == ["Note to self"]
        await client.mailboxes.delete(box.address)
        assert box.address not in [m.address for m in (await client.mailboxes.list()).mailboxes]
