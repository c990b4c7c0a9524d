"""Input no database can take: a 4xx on SQLite and PostgreSQL alike, never a 500.

Found by schemathesis on a PostgreSQL node: a malformed id in a path, a NUL
character or half a surrogate pair in a query or a JSON body.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from accounts import admin, new_mailbox
from conftest import node_settings
from mailcue_server.api.text_input import json_text_ok
from mailcue_server.app import MailcueServer
from services import fresh_postgres_database


@pytest_asyncio.fixture(scope="module", params=["sqlite", "postgresql"])
async def engine_http(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[httpx.AsyncClient]:
    """A node on each engine in turn (one at a time: Tortoise's models are process-wide)."""
    data_dir: Path = tmp_path_factory.mktemp(request.param)
    if request.param == "sqlite":
        node = MailcueServer(node_settings(data_dir))
        await node.start()
        try:
            async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as client:
                yield client
        finally:
            await node.stop()
        return
    async with fresh_postgres_database() as url:
        node = MailcueServer(node_settings(data_dir, database_url=url))
        await node.start()
        try:
            async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as client:
                yield client
        finally:
            await node.stop()


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PATCH", "/api/v1/auth/api-keys/0", {"name": "x"}),
        ("DELETE", "/api/v1/auth/api-keys/not-a-uuid", None),
        ("PUT", "/api/v1/auth/users/abc", {"max_mailboxes": 1}),
        ("DELETE", "/api/v1/auth/users/vç", None),
        ("GET", "/api/v1/emails/send-canaries/0", None),
    ],
)
async def test_a_malformed_id_is_not_found(
    engine_http: httpx.AsyncClient, method: str, path: str, body: dict[str, object] | None
) -> None:
    boss = await admin(engine_http)
    response = await engine_http.request(method, path, headers=boss.headers, json=body)
    assert response.status_code == 404, response.text


async def test_nul_in_a_path_or_query_is_a_400(engine_http: httpx.AsyncClient) -> None:
    boss = await admin(engine_http)
    address = await new_mailbox(engine_http, boss)

    in_query = await engine_http.get(
        "/api/v1/emails/1/raw", headers=boss.headers, params={"mailbox": "\x00l"}
    )
    in_path = await engine_http.get(f"/api/v1/mailboxes/{address}%00/emails", headers=boss.headers)

    for response, where in ((in_query, "query string"), (in_path, "path")):
        assert response.status_code == 400, response.text
        assert response.json()["detail"] == (
            f"The {where} holds a NUL character or an unpaired surrogate, which no text may"
        )


@pytest.mark.parametrize(
    "text", ['"a\\u0000b"', '"\\ud83d"', '"\\ude00x"', '"\\ud83d\\\\ude00"', '"\\uD83D"']
)
async def test_unstorable_text_in_a_json_body_is_a_400(
    engine_http: httpx.AsyncClient, text: str
) -> None:
    boss = await admin(engine_http)
    for path, body in (
        ("/api/v1/emails/validate-batch", '{"emails": ["ok@example.test", TEXT]}'),
        ("/graphql", '{"query": "{ health { status } }", "variables": {"x": TEXT}}'),
    ):
        response = await engine_http.post(
            path,
            headers={**boss.headers, "content-type": "application/json"},
            content=body.replace("TEXT", text).encode(),
        )
        assert response.status_code == 400, (path, response.text)
        assert "NUL character or an unpaired surrogate" in response.json()["detail"]


async def test_a_whole_surrogate_pair_and_an_escaped_backslash_are_ordinary_text(
    engine_http: httpx.AsyncClient,
) -> None:
    boss = await admin(engine_http)
    address = await new_mailbox(engine_http, boss)
    name = "Smile \U0001f600 and a literal \\u0000"
    body = json.dumps({"display_name": name})  # ensure_ascii: the emoji as a surrogate pair
    assert "\\ud83d\\ude00" in body and "\\\\u0000" in body

    response = await engine_http.put(
        f"/api/v1/mailboxes/{address}/display-name",
        headers={**boss.headers, "content-type": "application/json"},
        content=body.encode(),
    )

    assert response.status_code == 200, response.text
    boxes = (await engine_http.get("/api/v1/mailboxes", headers=boss.headers)).json()
    shown = {box["address"]: box["display_name"] for box in boxes["mailboxes"]}
    assert shown[address] == name


@pytest.mark.parametrize(
    ("body", "ok"),
    [
        (b'{"a": "plain"}', True),
        (b'{"a": "\\u00e9\\ud83d\\ude00"}', True),
        (b'{"a": "\\\\u0000"}', True),  # a backslash, then the text u0000
        (b'{"a": "\\\\\\u0000"}', False),  # a backslash, then a NUL
        (b'{"a": "\\u0000"}', False),
        (b'{"a": "\\ud83d", "b": "\\ude00"}', False),  # the halves in two strings
        (b'{"a": "\\ud83d\\ud83d\\ude00"}', False),
        (b'{"a": "x\\udfff"}', False),
        (b'{"a": "x\\ud800"}', False),
    ],
)
def test_json_text_check(body: bytes, ok: bool) -> None:
    assert json_text_ok(body) is ok
