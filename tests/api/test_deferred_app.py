"""The HTTP edge while the API is built on a thread (api/deferred.py).

The health probe is answered at once; every other request waits for the API
and is then served by it; a failed build turns the probe unhealthy.
"""

from __future__ import annotations

import asyncio
import threading
import time

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp

from mailcue_server.api.deferred import HEALTH_PATH, DeferredApp
from waiting import eventually

HEALTH = {"status": "healthy", "version": "9.9.9", "mode": "test"}


def built_api() -> Starlette:
    async def health(request: Request) -> JSONResponse:
        return JSONResponse(HEALTH | {"from": "api"})

    async def emails(request: Request) -> JSONResponse:
        return JSONResponse({"emails": []})

    return Starlette(routes=[Route(HEALTH_PATH, health), Route("/api/v1/emails", emails)])


def client(app: ASGIApp) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://node")


async def test_health_answers_while_the_api_builds_and_other_requests_wait_for_it() -> None:
    release = threading.Event()

    def build() -> ASGIApp:
        assert release.wait(10)
        return built_api()

    app = DeferredApp(build, HEALTH)
    app.start()
    async with client(app) as http:
        early = await http.get(HEALTH_PATH)
        assert early.status_code == 200
        assert early.json() == HEALTH
        assert early.headers["x-content-type-options"] == "nosniff"
        assert (await http.head(HEALTH_PATH)).content == b""

        waiting = asyncio.ensure_future(http.get("/api/v1/emails"))
        await asyncio.sleep(0.2)
        assert not waiting.done()  # no answer until the API exists
        release.set()
        answered = await asyncio.wait_for(waiting, 10)
        assert answered.status_code == 200
        assert answered.json() == {"emails": []}

        # From now on the API itself answers the probe.
        assert (await http.get(HEALTH_PATH)).json() == HEALTH | {"from": "api"}


async def test_a_failed_build_makes_the_node_unhealthy_and_says_why() -> None:
    def build() -> ASGIApp:
        raise ImportError("No module named 'strawberry'")

    app = DeferredApp(build, HEALTH)
    app.start()
    async with client(app) as http:
        # The probe turns unhealthy by itself, before any other request was made.
        async def probe_says_unhealthy() -> bool:
            return (await http.get(HEALTH_PATH)).status_code == 503

        await eventually(probe_says_unhealthy, timeout=5)
        assert (await http.get(HEALTH_PATH)).json() == HEALTH | {"status": "unhealthy"}

        refused = await http.get("/api/v1/emails")
        assert refused.status_code == 503
        assert "No module named 'strawberry'" in refused.json()["detail"]


def test_a_node_stopped_while_the_api_builds_exits_without_waiting_for_it() -> None:
    # SIGTERM right after start-up: the loop ends while the build still runs.
    # asyncio.run joins its executor's threads; the build must not be one of them.
    release = threading.Event()

    def build() -> ASGIApp:
        release.wait(30)
        return built_api()

    async def start_and_stop() -> None:
        DeferredApp(build, HEALTH).start()
        await asyncio.sleep(0.05)

    began = time.monotonic()
    try:
        asyncio.run(start_and_stop())
        assert time.monotonic() - began < 5
    finally:
        release.set()


async def test_a_request_in_the_turn_the_build_ends_gets_the_api() -> None:
    # The build's result reaches the loop as a callback; a request whose step was
    # already queued runs before the app is put in place and must still get it.
    finished = threading.Event()

    def build() -> ASGIApp:
        api = built_api()
        finished.set()
        return api

    app = DeferredApp(build, HEALTH)
    app.start()
    assert finished.wait(10)
    time.sleep(0.2)  # holds the loop: the result is now queued for it
    await asyncio.sleep(0)  # runs the result's callback; ours is queued behind us
    async with client(app) as http:
        answered = await http.get("/api/v1/emails")
    assert answered.status_code == 200
    assert answered.json() == {"emails": []}
