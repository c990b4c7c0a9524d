"""The public health probe."""

from __future__ import annotations

import httpx


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
