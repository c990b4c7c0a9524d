"""X-Forwarded-For counts only from configured proxies (MAILCUE_TRUSTED_PROXIES).

Otherwise a guesser on any local address sends a new made-up client address
with each try and the login limit never sees the same client twice.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from accounts import PASSWORD, new_user
from conftest import node_settings
from mailcue_server.app import MailcueServer
from mailcue_server.config import load_settings
from mailcue_server.errors import ConfigError

LOGIN = "/api/v1/auth/login"
BUDGET = 5


async def guess(http: httpx.AsyncClient, username: str, n: int, forwarded: str) -> int:
    response = await http.post(
        LOGIN,
        json={"username": username, "password": f"guess-{n}"},
        headers={"X-Forwarded-For": forwarded},
    )
    return response.status_code


async def test_forwarded_for_is_ignored_by_default(http: httpx.AsyncClient) -> None:
    user = await new_user(http)
    statuses = [
        await guess(http, user.username, n, f"198.51.100.{n + 1}") for n in range(BUDGET + 1)
    ]
    assert statuses == [401] * BUDGET + [429]


@pytest_asyncio.fixture(scope="module")
async def behind_proxy(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MailcueServer]:
    node = MailcueServer(
        node_settings(tmp_path_factory.mktemp("proxied"), trusted_proxies="10.9.0.0/16, 127.0.0.1")
    )
    await node.start()
    yield node
    await node.stop()


async def test_a_trusted_proxy_names_the_client(behind_proxy: MailcueServer) -> None:
    async with httpx.AsyncClient(base_url=behind_proxy.http_url, timeout=30) as http:
        user = await new_user(http)
        client = "203.0.113.7"
        statuses = [await guess(http, user.username, n, client) for n in range(BUDGET + 1)]
        assert statuses == [401] * BUDGET + [429]
        # A made-up address in front of the one the proxy saw changes nothing...
        assert await guess(http, user.username, 9, f"192.0.2.1, {client}") == 429
        # ...and a chain of trusted proxies is walked back to the client.
        assert await guess(http, user.username, 9, f"{client}, 10.9.3.4") == 429
        # Another client behind the same proxy has its own budget.
        other = await http.post(
            LOGIN,
            json={"username": user.username, "password": PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.8"},
        )
        assert other.status_code == 200, other.text


@pytest.mark.parametrize("value", ["not-an-ip", "10.0.0.0/33", "*"])
def test_a_bad_proxy_list_stops_start_up_naming_the_variable(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(data_dir=tmp_path, trusted_proxies=value, _env_file=None)
    assert caught.value.message.startswith("MAILCUE_TRUSTED_PROXIES:")
