"""The public health probe."""

from __future__ import annotations

import socket

import httpx

from mailcue_server.app import bind_socket


async def test_health_answers_without_credentials(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "healthy"


async def test_health_ignores_bad_credentials(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/health", headers={"Authorization": "Bearer nonsense"})
    assert response.status_code == 200


async def test_unknown_route_is_json_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/no-such-route")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_swagger_ui_and_openapi_document_are_served(http: httpx.AsyncClient) -> None:
    docs = await http.get("/api/docs")
    assert docs.status_code == 200 and 'id="swagger-ui"' in docs.text
    spec = (await http.get("/api/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/auth/login" in spec["paths"]
    assert set(spec["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}


def test_http_socket_is_tcp_so_asyncio_disables_nagle() -> None:
    """asyncio sets TCP_NODELAY only when the socket's proto is TCP; without it every
    keep-alive response waited ~40 ms for a delayed ACK (seen in scripts/bench_api.py)."""
    sock = bind_socket("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
