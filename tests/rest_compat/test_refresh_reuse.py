"""A refresh token reused after the grace period signs the whole session out.

This module's node has a short grace (``MAILCUE_REFRESH_REUSE_GRACE_SECONDS``)
so the test lets real time pass instead of faking a clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from accounts import new_user
from conftest import node_settings
from mailcue_server.app import MailcueServer

GRACE = 0.5
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/auth/me"


@pytest_asyncio.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailcueServer]:
    node = MailcueServer(
        node_settings(tmp_path_factory.mktemp("grace"), refresh_reuse_grace_seconds=GRACE)
    )
    await node.start()
    yield node
    await node.stop()


async def test_a_reuse_after_the_grace_period_revokes_the_family(
    http: httpx.AsyncClient,
) -> None:
    account = await new_user(http)
    rotated = (await http.post(REFRESH, json={"refresh_token": account.refresh_token})).json()
    access = {"Authorization": f"Bearer {rotated['access_token']}"}
    assert (await http.get(ME, headers=access)).status_code == 200

    await asyncio.sleep(GRACE * 2)
    reuse = await http.post(REFRESH, json={"refresh_token": account.refresh_token})

    assert reuse.status_code == 401
    assert (await http.get(ME, headers=access)).status_code == 401
    newest = await http.post(REFRESH, json={"refresh_token": rotated["refresh_token"]})
    assert newest.status_code == 401
