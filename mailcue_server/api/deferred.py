"""The HTTP edge while the API is being built: health answers at once, the rest waits for it.

Building the FastAPI app and the GraphQL schema (over a hundred routes and as
many types, with the imports behind them) is most of the time ``mailcue
serve`` took to start: about two seconds of CPU. Test suites start a server
hundreds of times a day, and mail can be taken meanwhile. So the node binds
every listener first, serves HTTP through this shell, and builds the API on
a thread: ``GET /api/v1/health`` is answered from the first moment with the
body the API gives, and any other request (WebSocket upgrades included)
waits until the API is built, then is served by it as if it had been there
all along. Should building fail (a bug, or an import missing from the
install), the health probe turns ``unhealthy`` (503) and every other request
is answered 503 with the reason, so orchestrators replace the node.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import threading
import time
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from mailcue_server.api.security_headers import SecurityHeadersMiddleware
from mailcue_server.health import UNHEALTHY

log = logging.getLogger(__name__)

HEALTH_PATH = "/api/v1/health"


class DeferredApp:
    """An ASGI app whose real app is built by ``build`` on a thread, started by :meth:`start`.

    Args:
        build: Makes the real app (no I/O; it runs off the event loop).
        health: The body ``GET /api/v1/health`` answers until then.
    """

    def __init__(self, build: Callable[[], ASGIApp], health: dict[str, str]) -> None:
        self._build = build
        self._health = health
        self._app: ASGIApp | None = None
        self._built: asyncio.Future[ASGIApp] | None = None
        self._probe_answer: ASGIApp | None = SecurityHeadersMiddleware(_Answer(200, health))

    def start(self) -> None:
        """Begin building on a thread; the event loop goes on.

        A daemon thread of its own, not the loop's executor: a SIGTERM during
        the build must stop the node at once, and ``asyncio.run`` would join
        the executor's threads (seconds on a busy machine) before exiting.
        """
        if self._built is not None:
            return
        loop = asyncio.get_running_loop()
        built: asyncio.Future[ASGIApp] = loop.create_future()
        built.add_done_callback(self._settled)  # runs before any awaiting request resumes
        self._built = built

        def run() -> None:
            try:
                app = self._timed_build()
            except BaseException as exc:  # handed to whoever awaits the app
                deliver = functools.partial(_fail, built, exc)
            else:
                deliver = functools.partial(_give, built, app)
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(deliver)

        threading.Thread(target=run, name="build-http-api", daemon=True).start()

    async def ready(self) -> ASGIApp:
        """The real app once built; after a failed build, the app that answers 503."""
        if self._app is None:
            self.start()
            assert self._built is not None  # noqa: S101 - set by start()
            built = self._built
            with contextlib.suppress(Exception):  # _settled makes the 503 app of it
                await built
            # The done-callback may not have run yet: a future already done when
            # awaited does not suspend, so this request can come first.
            self._settled(built)
        assert self._app is not None  # noqa: S101 - set by _settled
        return self._app

    def _settled(self, built: asyncio.Future[ASGIApp]) -> None:
        """Put the built app (or the 503 one) in place the moment the build ends.

        Not left to the first request: a build that failed must turn the
        health probe unhealthy (and be logged) even if nothing else is asked.
        """
        if self._app is not None or built.cancelled():
            return  # settled already (by the callback or by ready())
        error = built.exception()
        if error is None:
            self._app = built.result()
            self._probe_answer = None  # the API answers the probe from now on
        elif isinstance(error, Exception):
            self._app = self._broken(error)

    def _broken(self, exc: Exception) -> ASGIApp:
        log.error("the HTTP API could not be built: %r", exc)
        unhealthy = self._health | {"status": UNHEALTHY}
        self._probe_answer = SecurityHeadersMiddleware(_Answer(503, unhealthy))
        reason = {"detail": f"The HTTP API could not be built: {exc}"}
        return SecurityHeadersMiddleware(_Answer(503, reason))

    def _timed_build(self) -> ASGIApp:
        began = time.perf_counter()
        app = self._build()
        log.debug("API built in %.2f s", time.perf_counter() - began)
        return app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        probe = self._probe_answer
        if probe is not None and _is_health_probe(scope):
            await probe(scope, receive, send)
            return
        app = self._app if self._app is not None else await self.ready()
        await app(scope, receive, send)


def _give(built: asyncio.Future[ASGIApp], app: ASGIApp) -> None:
    if not built.done():  # done: the loop is closing and gave up waiting
        built.set_result(app)


def _fail(built: asyncio.Future[ASGIApp], error: BaseException) -> None:
    if not built.done():
        built.set_exception(error)


def _is_health_probe(scope: Scope) -> bool:
    return (
        scope["type"] == "http"
        and scope["method"] in ("GET", "HEAD")
        and scope["path"] == HEALTH_PATH
    )


class _Answer:
    """One fixed JSON answer (the early health probe, or the 503 of a failed build)."""

    def __init__(self, status: int, body: dict[str, str]) -> None:
        self._status = status
        self._body = json.dumps(body).encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":  # a WebSocket handshake: refuse it
            await send({"type": "websocket.close", "code": 1011})
            return
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(self._body)).encode()),
        ]
        await send({"type": "http.response.start", "status": self._status, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else self._body
        await send({"type": "http.response.body", "body": body})
