"""Schemathesis over the whole REST API of a real node: no 5xx, nothing undocumented.

The ``st`` command generates requests from the node's own ``/api/openapi.json``
(valid ones and invalid ones), sends them as the admin with a full-access API
key, and checks every answer: not a server error, a documented status code,
a documented content type, a body that matches the documented schema. It runs
against a SQLite node and a PostgreSQL node (their failures differ: PostgreSQL
refuses NUL characters and malformed UUIDs).

Bounded so CI stays quick: a few examples per operation, deterministic
generation (the same requests every run), no example database on disk.

Left out: ``GET /api/v1/events/stream``, an SSE stream that never ends by
design (its own tests cover it). Nothing else needs to be: DNS goes to a
local dnsmasq that knows no names, the keyserver is a closed loopback port,
and test mode sends no mail off this machine.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path

import httpx
import pytest

from accounts import admin
from conftest import node_settings
from dns_server import dns_server
from mailcue_server.app import MailcueServer
from processes import closed_port
from services import fresh_postgres_database

ST = Path(sys.executable).with_name("st")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
EXCLUDED_PATHS = ("/api/v1/events/stream",)
MAX_EXAMPLES = {"sqlite": 15, "postgresql": 8}
RUN_TIMEOUT = 600


@asynccontextmanager
async def running_node(tmp: Path, engine: str) -> AsyncIterator[MailcueServer]:
    postgres = fresh_postgres_database() if engine == "postgresql" else nullcontext("")
    async with dns_server() as resolver, postgres as database_url:
        node = MailcueServer(
            node_settings(
                tmp,
                database_url=database_url,
                dns_resolver=resolver,
                keyserver_url=f"http://127.0.0.1:{closed_port()}",
                validation_timeout=2,
            )
        )
        await node.start()
        try:
            yield node
        finally:
            await node.stop()


async def admin_key(http: httpx.AsyncClient) -> str:
    boss = await admin(http)
    created = await http.post(
        "/api/v1/auth/api-keys",
        headers=boss.headers,
        json={"name": "schemathesis", "scopes": ["*"]},
    )
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def failures(output: str) -> str:
    """What st printed from its failure list on, for the assertion message."""
    start = min(
        (at for at in (output.find("= FAILURES ="), output.find("= ERRORS =")) if at >= 0),
        default=max(0, len(output) - 6000),
    )
    return output[start : start + 20000]


@pytest.mark.parametrize("engine", ["sqlite", "postgresql"])
async def test_every_rest_route_keeps_to_its_openapi_document(tmp_path: Path, engine: str) -> None:
    async with running_node(tmp_path, engine) as node:
        async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as http:
            key = await admin_key(http)
        command = [
            str(ST),
            "run",
            f"{node.http_url}/api/openapi.json",
            "--header",
            f"X-API-Key: {key}",
            "--checks",
            ",".join(CHECKS),
            "--max-examples",
            str(MAX_EXAMPLES[engine]),
            "--generation-deterministic",  # and so no example database
            # The key is the credential; generated Authorization/X-API-Key values would
            # only replace it with junk (each route's 401 is checked all the same).
            "--generation-with-security-parameters",
            "false",
            # {name} of the domain routes: most generated strings are no valid path segment.
            "--suppress-health-check",
            "filter_too_much",
            "--request-timeout",
            "30",
            "--no-color",
            *(arg for path in EXCLUDED_PATHS for arg in ("--exclude-path", path)),
        ]
        started = time.monotonic()
        run = await asyncio.create_subprocess_exec(
            *command,
            cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        stdout, _ = await asyncio.wait_for(run.communicate(), RUN_TIMEOUT)
        output = stdout.decode("utf-8", "replace")
        took = time.monotonic() - started

        async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as http:
            still = await http.get("/api/v1/auth/me", headers={"X-API-Key": key})

    assert run.returncode == 0, f"schemathesis found problems ({took:.0f} s):\n{failures(output)}"
    assert "Tested: " in output, output[-3000:]
    # The run was signed in to the end, not a long series of documented 401s.
    assert still.status_code == 200, still.text
    print(f"schemathesis on {engine}: {took:.0f} s")  # shown with -s
