"""The official client SDK (PyPI ``mailcue``) works against our server unchanged."""

from __future__ import annotations

import asyncio

import httpx
from mailcue import AsyncMailcue, Mailcue
from mailcue.exceptions import AuthenticationError, PermissionDeniedError

from accounts import new_api_key, new_user


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
