"""The composition root: builds settings, database and services once, starts and stops servers.

``MailcueServer`` is what ``mailcue serve`` runs and what tests start on port
0. Everything is passed down from here; nothing lives in module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass, field

import uvicorn
from fastapi import FastAPI

from mailcue_server.api.app import create_app
from mailcue_server.config import Settings, resolve_secret_key
from mailcue_server.resolvers.context import Services
from mailcue_server.resolvers.rate_limit import LoginLimiter
from mailcue_server.resolvers.tokens import TokenService
from mailcue_server.store.bootstrap import ensure_admin
from mailcue_server.store.credentials import SecretBox
from mailcue_server.store.db import Database

log = logging.getLogger(__name__)


def build_services(settings: Settings, secret_key: str) -> Services:
    return Services(
        settings=settings,
        secret_key=secret_key,
        tokens=TokenService(secret_key, settings.access_token_expire_minutes),
        limiter=LoginLimiter(settings.login_max_attempts, settings.login_window_seconds),
        totp_box=SecretBox(secret_key, "totp"),
    )


class _EmbeddedUvicorn(uvicorn.Server):
    """Uvicorn without its own signal handling: the composition root owns signals."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one (read it back from the socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


@dataclass
class Listener:
    name: str
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}" if self.name == "http" else f"{host}:{self.port}"


@dataclass
class MailcueServer:
    """One MailCue node: database, services and every listener."""

    settings: Settings
    db: Database | None = None
    services: Services | None = None
    http_app: FastAPI | None = None
    listeners: dict[str, Listener] = field(default_factory=dict)
    _http: uvicorn.Server | None = None
    _http_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Open the database, apply migrations, provision the admin, start listening."""
        settings = self.settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        secret_key = resolve_secret_key(settings)
        self.db = Database(settings.effective_database_url)
        await self.db.open()
        await self.db.migrate()
        await ensure_admin(
            settings.admin_user, settings.admin_password, settings.effective_admin_email
        )
        self.services = build_services(settings, secret_key)
        self.http_app = create_app(self.services)
        await self._start_http()
        for listener in self.listeners.values():
            log.info("listening: %-10s %s", listener.name, listener.url)

    async def _start_http(self) -> None:
        sock = bind_socket(self.settings.bind, self.settings.http_port)
        assert self.http_app is not None  # noqa: S101 - set by start()
        config = uvicorn.Config(
            self.http_app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="websockets-sansio",
        )
        self._http = _EmbeddedUvicorn(config)
        self._http_task = asyncio.create_task(self._http.serve(sockets=[sock]))
        while not self._http.started:
            if self._http_task.done():
                await self._http_task  # surfaces the start-up error
                raise RuntimeError("HTTP server stopped during start-up")
            await asyncio.sleep(0.01)
        host, port = sock.getsockname()[:2]
        self.listeners["http"] = Listener("http", host, port)

    @property
    def http_url(self) -> str:
        return self.listeners["http"].url

    async def stop(self) -> None:
        """Stop accepting, let open requests finish, close the database."""
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            await self._http_task
            self._http = None
        if self.db is not None:
            await self.db.close()
            self.db = None
