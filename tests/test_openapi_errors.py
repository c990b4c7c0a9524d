"""The OpenAPI document tells the truth about errors: each status a route answers, its body."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from accounts import admin
from mailcue_server.app import MailcueServer

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.fixture
async def document(server: MailcueServer, http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/api/openapi.json")
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


def operations(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
    ]


async def test_every_route_documents_the_errors_of_the_http_edge(
    document: dict[str, Any],
) -> None:
    for where, operation in operations(document):
        answers = operation["responses"]
        for code in ("413", "414", "431"):
            assert code in answers, (where, sorted(answers))
        for code, answer in answers.items():
            if int(code) < 400 or code == "422":
                continue
            media = "text/plain" if code in ("414", "431") else "application/json"
            assert set(answer["content"]) == {media}, (where, code)
            if media == "application/json":
                assert answer["content"][media]["schema"] == ERROR_REF, (where, code)
        assert list(answers) == sorted(answers), where


async def test_signed_in_routes_document_401_and_403_and_public_ones_do_not(
    document: dict[str, Any],
) -> None:
    paths = document["paths"]
    for path, method in (("/api/v1/mailboxes", "get"), ("/api/v1/system/queue", "get")):
        assert {"401", "403"} <= set(paths[path][method]["responses"])
    assert "401" not in paths["/api/v1/health"]["get"]["responses"]
    login = paths["/api/v1/auth/login"]["post"]["responses"]
    assert {"400", "401", "429"} <= set(login) and "403" not in login
    assert "404" in paths["/api/v1/mailboxes/{address}/retention"]["get"]["responses"]
    assert "409" in paths["/api/v1/domains"]["post"]["responses"]
    assert "400" in paths["/api/v1/system/queue"]["get"]["responses"]


async def test_the_documented_error_body_is_what_errors_look_like(
    server: MailcueServer, http: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    schema = document["components"]["schemas"]["ErrorResponse"]
    assert schema["required"] == ["detail"]
    assert set(schema["properties"]) == {"detail"}
    boss = await admin(http)
    answers = [
        await http.get("/api/v1/mailboxes/nobody@example.test/retention", headers=boss.headers),
        await http.get("/api/v1/system/queue", headers=boss.headers, params={"page": 0}),
        await http.get("/api/v1/mailboxes"),
        await http.post(
            "/api/v1/auth/login", json={"username": "x" * (2 * 1024 * 1024), "password": "y"}
        ),
    ]
    assert [answer.status_code for answer in answers] == [404, 400, 401, 413]
    for answer in answers:
        body = answer.json()
        assert list(body) == ["detail"] and isinstance(body["detail"], str), body
