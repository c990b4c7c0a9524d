"""A whole node on PostgreSQL: the same code path as SQLite, over real HTTP."""

from __future__ import annotations

from pathlib import Path

import httpx

from conftest import ADMIN_PASSWORD, ADMIN_USER, node_settings
from mailcue_server.app import MailcueServer
from services import fresh_postgres_database


async def test_server_runs_on_postgresql(tmp_path: Path) -> None:
    async with fresh_postgres_database() as url:
        node = MailcueServer(node_settings(tmp_path, database_url=url))
        await node.start()
        try:
            async with httpx.AsyncClient(base_url=node.http_url) as http:
                login = await http.post(
                    "/api/v1/auth/login",
                    json={"username": ADMIN_USER, "password": ADMIN_PASSWORD},
                )
                assert login.status_code == 200
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
                key = await http.post(
                    "/api/v1/auth/api-keys", headers=headers, json={"name": "pg"}
                )
                assert key.status_code == 201
                me = await http.get("/api/v1/auth/me", headers={"X-API-Key": key.json()["key"]})
                assert me.json()["username"] == ADMIN_USER
        finally:
            await node.stop()
