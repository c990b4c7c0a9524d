"""The composition root: builds settings, database, bus and services once; starts and stops them.

``MailcueServer`` is what ``mailcue serve`` runs and what tests start on port
0. Everything is passed down from here; nothing lives in module globals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import uvicorn
from starlette.types import ASGIApp

from mailcue_server.api.connections import http_protocols
from mailcue_server.api.deferred import DeferredApp
from mailcue_server.config import Settings, resolve_secret_key
from mailcue_server.errors import ListenerUnavailable
from mailcue_server.events.bus import EventBus
from mailcue_server.events.memory import MemoryBus
from mailcue_server.health import health_fields
from mailcue_server.resolvers.context import Services, SmtpTarget
from mailcue_server.resolvers.tokens import TokenService
from mailcue_server.start_failures import DATA_DIR, blame, hide_password, prepare_data_dir
from mailcue_server.store import settings as stored_settings
from mailcue_server.store.bootstrap import ensure_admin
from mailcue_server.store.credentials import SecretBox
from mailcue_server.store.db import Database
from mailcue_server.store.ingest import IngestQueue
from mailcue_server.store.login_limiter import LoginLimiter
from mailcue_server.workers.connections import (
    ConnectionBudget,
    ConnectionCaps,
    budget_for,
    raise_open_file_limit,
)
from mailcue_server.workers.dns_checks import DnsCheckWorker
from mailcue_server.workers.imap.server import ImapServer
from mailcue_server.workers.periodic import Periodic
from mailcue_server.workers.pop3.server import Pop3Server
from mailcue_server.workers.pop3.store_backend import StorePop3Backend
from mailcue_server.workers.retention import RetentionWorker
from mailcue_server.workers.settings_sync import SettingsSync
from mailcue_server.workers.smtp.server import Listener as SmtpListener
from mailcue_server.workers.smtp.server import SmtpServer, TlsMode
from mailcue_server.workers.smtp.sink import ListenerKind
from mailcue_server.workers.smtp.store_sink import InboundAuth, OutboundRoute, StoreSink
from mailcue_server.workers.tls import SharedCertificateSync, TlsManager

if TYPE_CHECKING:
    from mailcue_server.workers.outbound import OutboundWorker

log = logging.getLogger(__name__)

# Not a valid user name or address, so no account can collide with it.
API_SUBMITTER = "~mailcue-api"

# Seconds a database or Redis may take to answer at start-up before we give up on it.
CONNECT_TIMEOUT = 10.0
# Seconds to stop what a failed start had started, so the process can exit.
STOP_AFTER_FAILED_START = 10.0


def build_services(settings: Settings, secret_key: str, bus: EventBus) -> Services:
    return Services(
        settings=settings,
        secret_key=secret_key,
        tokens=TokenService(secret_key, settings.access_token_expire_minutes),
        limiter=LoginLimiter(settings.login_max_attempts, settings.login_window_seconds),
        totp_box=SecretBox(secret_key, "totp"),
        bus=bus,
    )


def connection_caps(settings: Settings) -> ConnectionCaps:
    """The caps of every listener, all of them together within the open-file limit."""
    open_files = raise_open_file_limit()
    budget = ConnectionBudget(budget_for(open_files))
    log.debug("open-file limit %d: %d client connections in all", open_files, budget.capacity)
    return ConnectionCaps(
        total=settings.max_connections,
        per_client=settings.max_connections_per_client,
        budget=budget,
    )


async def open_bus(settings: Settings) -> EventBus:
    """Redis pub/sub when configured (several nodes; it must answer), else the in-process bus."""
    replay = settings.event_replay_size
    if not settings.redis_url:
        return MemoryBus(replay_size=replay)
    from mailcue_server.events.redis import RedisBus  # only nodes of a cluster need it

    bus = RedisBus(settings.redis_url, replay_size=replay)
    with blame("MAILCUE_REDIS_URL", hide_password(settings.redis_url)):
        async with asyncio.timeout(CONNECT_TIMEOUT):
            await bus.ping()
    return bus


class _EmbeddedUvicorn(uvicorn.Server):
    """Uvicorn without its own signal handling: the composition root owns signals."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


def _database_setting(settings: Settings) -> tuple[str, object]:
    """The setting to blame when the database fails: its URL, or the data dir of SQLite."""
    if settings.database_url:
        return "MAILCUE_DATABASE_URL", hide_password(settings.database_url)
    return DATA_DIR, settings.data_dir


async def _listen(name: str, host: str, port: int, start: Awaitable[int]) -> int:
    """Await a server's ``start()``, saying which listener failed to bind."""
    try:
        return await start
    except OSError as exc:
        raise ListenerUnavailable(name, host, port, exc) from None


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket; port 0 picks a free one (read it back from the socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio turns Nagle off (TCP_NODELAY) only on sockets whose
    # proto says TCP, and without it a keep-alive client waits ~40 ms per response for
    # the delayed ACK of the response's first write.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


def _loopback_for(bind: str) -> str:
    """The address to reach our own listener bound on ``bind`` (a wildcard means loopback)."""
    if bind in ("0.0.0.0", ""):  # noqa: S104 - comparing, not binding
        return "127.0.0.1"
    return "::1" if bind == "::" else bind


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
    """One MailCue node: database, bus, services and every listener."""

    settings: Settings
    db: Database | None = None
    bus: EventBus | None = None
    tls: TlsManager | None = None
    services: Services | None = None
    http_app: DeferredApp | None = None
    listeners: dict[str, Listener] = field(default_factory=dict)
    _caps: ConnectionCaps = field(default_factory=ConnectionCaps)
    _ingest: IngestQueue | None = None
    _smtp: SmtpServer | None = None
    _pop3: list[Pop3Server] = field(default_factory=list)
    _imap: list[ImapServer] = field(default_factory=list)
    _http: uvicorn.Server | None = None
    _http_task: asyncio.Task[None] | None = None
    _dns_checks: DnsCheckWorker | None = None
    # What other nodes saved (live settings, the shared TLS upload), followed every few seconds.
    settings_sync: SettingsSync | None = None
    tls_sync: SharedCertificateSync | None = None
    _node_sync: Periodic | None = None
    _retention: RetentionWorker | None = None
    # Decides staged sends whose hold window ended (auto_release).
    _send_canaries: Periodic | None = None
    # The outbound queue's delivery worker (production, a relay, or MAILCUE_OUTBOUND_ENABLED).
    outbound: OutboundWorker | None = None
    # Work started after a commit (recording received bounces); awaited at stop.
    _background: set[asyncio.Task[None]] = field(default_factory=set)

    async def start(self) -> None:
        """Open the database, apply migrations, provision the admin, start listening.

        Raises:
            ConfigError: one line naming the setting that stopped start-up. What
                had started by then is stopped again, so the process can exit.
        """
        try:
            await self._start()
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.stop(), STOP_AFTER_FAILED_START)
            raise

    async def _start(self) -> None:
        settings = self.settings
        prepare_data_dir(settings.data_dir)
        with blame(DATA_DIR, settings.data_dir):
            secret_key = resolve_secret_key(settings)
        with blame(*_database_setting(settings)):
            self.db = Database(settings.effective_database_url)
            async with asyncio.timeout(CONNECT_TIMEOUT):
                await self.db.open()
                await self.db.ping()
            await self.db.migrate()
            # What PUT /system/settings saved wins over MAILCUE_* (hostname, domain, size).
            settings = self.settings = await stored_settings.apply_saved(
                settings, stored_settings.settings_box(secret_key)
            )
            await ensure_admin(
                settings.admin_user, settings.admin_password, settings.effective_admin_email
            )
        self.bus = await open_bus(settings)
        with blame(DATA_DIR, settings.data_dir):
            self.tls = TlsManager(settings.data_dir / "tls", settings.effective_hostname)
            self.tls.load()
        self.tls_sync = SharedCertificateSync(self.tls, secret_key)
        await self.tls_sync.run_once()  # serve the cluster's upload from the first connection
        self.services = build_services(settings, secret_key, self.bus)
        self.services.tls = self.tls
        self.http_app = self._deferred_api(self.services)
        self.http_app.start()  # built while the database, TLS and listeners come up
        self._caps = connection_caps(settings)
        with blame("MAILCUE_BIND", settings.bind):
            await self._start_mail(self.bus, self.tls)
            await self._start_http()
        self._dns_checks = DnsCheckWorker(settings)
        self._dns_checks.start()
        self.settings_sync = SettingsSync(
            self._live_settings,
            self._apply_live_settings,
            stored_settings.settings_box(secret_key),
        )
        self._node_sync = Periodic("node-sync", settings.node_sync_interval, self._follow_others)
        self._node_sync.start()
        self._retention = RetentionWorker(settings, bus=self.bus)
        self._retention.start()
        self._send_canaries = Periodic(
            "send-canaries", settings.send_canary_interval, self._release_due_canaries
        )
        self._send_canaries.start()
        if settings.runs_outbound_queue:
            from mailcue_server.workers.outbound import OutboundWorker  # production and relays

            self.outbound = OutboundWorker(
                settings, bus=self.bus, secret_key=secret_key, live=self._live_settings
            )
            self.outbound.start()
            self.services.wake_outbound = self.outbound.wake
        for listener in self.listeners.values():
            log.info("listening: %-10s %s", listener.name, listener.url)

    async def _release_due_canaries(self) -> None:
        if self.services is not None:
            from mailcue_server.resolvers import send_canaries  # a feature few nodes use

            await send_canaries.release_due(self.services)

    @staticmethod
    def _deferred_api(services: Services) -> DeferredApp:
        """The HTTP app: health at once, the API built on a thread meanwhile (api/deferred.py)."""

        def build() -> ASGIApp:
            from mailcue_server.api.app import create_app  # most of start-up's imports

            return create_app(services)

        return DeferredApp(build, health_fields(services.settings))

    def _live_settings(self) -> Settings:
        """The settings in force now: the start-up ones with the live fields PUT since."""
        return self.services.settings if self.services is not None else self.settings

    def _apply_live_settings(self, settings: Settings) -> None:
        if self.services is not None:
            self.services.settings = settings

    async def _follow_others(self) -> None:
        if self.settings_sync is not None:
            await self.settings_sync.run_once()
        if self.tls_sync is not None:
            await self.tls_sync.run_once()

    def _bounces_received(self, reports: list[tuple[str, bytes]]) -> None:
        """Record received bounces in their mailbox owners' delivery history, off the hot path."""
        if self.services is None:
            return
        from mailcue_server.resolvers import deliverability  # imported with the first bounce

        task = asyncio.create_task(deliverability.record_received_bounces(self.services, reports))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    @property
    def _limiter(self) -> LoginLimiter:
        """The one login limiter of this node: HTTP, SMTP AUTH, IMAP and POP3 count together."""
        assert self.services is not None  # noqa: S101 - built before any listener starts
        return self.services.limiter

    def _max_message_size(self) -> int:
        return self._live_settings().max_message_size

    def _accepts_any_recipient(self) -> bool:
        """Test mode's catch-all as set now (``PUT /system/settings``, on every node)."""
        return self._live_settings().accepts_any_recipient

    def _inbound_auth(self) -> InboundAuth | None:
        settings = self.settings
        if not settings.checks_inbound_auth:
            return None
        return InboundAuth(
            hostname=settings.effective_hostname,
            nameserver=settings.dns_nameserver,
            timeout=settings.inbound_auth_timeout,
        )

    def _outbound_route(self) -> OutboundRoute | None:
        """Remote recipients go to the queue where a worker delivers them (else: all local)."""
        if not self.settings.runs_outbound_queue or self.services is None:
            return None

        def wake() -> None:
            if self.outbound is not None:
                self.outbound.wake()

        return OutboundRoute(dkim_secret=self.services.secret_key, wake=wake)

    async def _start_mail(self, bus: EventBus, tls: TlsManager) -> None:
        settings = self.settings
        test_mode = not settings.is_production
        self._ingest = IngestQueue(
            bus=bus,
            create_mailboxes=self._accepts_any_recipient,
            on_delivery_reports=self._bounces_received,
        )
        await self._ingest.start()
        host = settings.bind
        smtp_listeners = [
            SmtpListener(
                kind=ListenerKind.SMTP, host=host, port=settings.smtp_port, tls=TlsMode.STARTTLS
            ),
            SmtpListener(
                kind=ListenerKind.SUBMISSION,
                host=host,
                port=settings.submission_port,
                tls=TlsMode.STARTTLS,
                require_auth=True,
                allow_plaintext_auth=test_mode,
            ),
            SmtpListener(
                kind=ListenerKind.SMTPS,
                host=host,
                port=settings.smtps_port,
                tls=TlsMode.IMPLICIT,
                require_auth=True,
            ),
        ]
        if settings.lmtp_port is not None:
            smtp_listeners.append(
                SmtpListener(kind=ListenerKind.LMTP, host=host, port=settings.lmtp_port)
            )
        api_password = secrets.token_urlsafe(32)
        self._smtp = SmtpServer(
            StoreSink(
                self._ingest,
                accept_any_recipient=self._accepts_any_recipient,
                test_mode=test_mode,
                api_credential=(API_SUBMITTER, api_password),
                inbound_auth=self._inbound_auth(),
                outbound=self._outbound_route(),
                limiter=self._limiter,
            ),
            smtp_listeners,
            hostname=settings.effective_hostname,
            tls_context=tls.server_context(),
            max_message_size=self._max_message_size,
            postmaster_domain=settings.domain,
            idle_timeout=settings.smtp_idle_timeout,
            caps=self._caps,
        )
        ports = await self._smtp.start()
        for spec, port in zip(smtp_listeners, ports, strict=True):
            self.listeners[str(spec.kind)] = Listener(str(spec.kind), host, port)
        if self.services is not None:
            self.services.submission = SmtpTarget(
                host=_loopback_for(host),
                port=self.listeners[str(ListenerKind.SUBMISSION)].port,
                username=API_SUBMITTER,
                password=api_password,
                tls_context=tls.client_context,
                tls_hostname=settings.effective_hostname,
            )
        pop3_backend = StorePop3Backend(bus, self._limiter)
        plain = Pop3Server(
            pop3_backend,
            host=host,
            port=settings.pop3_port,
            starttls_context=tls.server_context(),
            allow_plaintext_auth=test_mode,
            login_timeout=settings.prelogin_idle_timeout,
            caps=self._caps,
        )
        implicit = Pop3Server(
            pop3_backend,
            host=host,
            port=settings.pop3s_port,
            ssl_context=tls.server_context(),
            login_timeout=settings.prelogin_idle_timeout,
            caps=self._caps,
        )
        for name, server in (("pop3", plain), ("pop3s", implicit)):
            self._pop3.append(server)
            port = await _listen(name, host, server.port, server.start())
            self.listeners[name] = Listener(name, host, port)
        await self._start_imap(bus, tls)
        if self.services is not None:  # for the production checklist's probes
            self.services.mail_listeners = {
                name: (_loopback_for(host), listener.port)
                for name, listener in self.listeners.items()
                if name != "http"
            }

    async def _start_imap(self, bus: EventBus, tls: TlsManager) -> None:
        settings = self.settings
        for name, port, implicit_tls in (
            ("imap", settings.imap_port, False),
            ("imaps", settings.imaps_port, True),
        ):
            imap = ImapServer(
                bus=bus,
                host=settings.bind,
                port=port,
                tls_context=tls.server_context(),
                implicit_tls=implicit_tls,
                allow_plaintext_auth=not settings.is_production,
                hostname=settings.effective_hostname,
                max_message_size=self._max_message_size,
                login_timeout=settings.prelogin_idle_timeout,
                caps=self._caps,
                limiter=self._limiter,
            )
            self._imap.append(imap)
            bound = await _listen(name, settings.bind, port, imap.start())
            self.listeners[name] = Listener(name, settings.bind, bound)

    async def _start_http(self) -> None:
        try:
            sock = bind_socket(self.settings.bind, self.settings.http_port)
        except OSError as exc:
            raise ListenerUnavailable(
                "http", self.settings.bind, self.settings.http_port, exc
            ) from None
        assert self.http_app is not None  # noqa: S101 - set by start()
        # Caps and slow-header timeout (api/connections.py); ws is uvicorn's websockets-sansio.
        protocols = http_protocols(
            self._caps.limiter("http"), header_timeout=self.settings.http_header_timeout
        )
        config = uvicorn.Config(
            self.http_app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            # 414/431 for oversized heads, 408 for slow ones, connection caps
            http=protocols.http,
            ws=protocols.ws,
            timeout_keep_alive=self.settings.http_keepalive_timeout,
            # X-Forwarded-For names the client only when a configured proxy sent it
            # (uvicorn's default trusts any local peer, which lets a guesser pick its address).
            proxy_headers=bool(self.settings.trusted_proxy_list),
            forwarded_allow_ips=self.settings.trusted_proxy_list,
            timeout_graceful_shutdown=5,
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

    def port(self, name: str) -> int:
        """The bound port of a listener (``smtp``, ``submission``, ``pop3``...)."""
        return self.listeners[name].port

    async def stop(self) -> None:
        """Stop accepting, let open sessions and queued deliveries finish, close the rest."""
        if self._retention is not None:
            await self._retention.stop()  # before the bus: it publishes email.deleted
            self._retention = None
        if self._send_canaries is not None:
            await self._send_canaries.stop()  # before SMTP: a release sends through it
            self._send_canaries = None
        if self.outbound is not None:
            await self.outbound.stop()  # unfinished claims go back to the queue
            self.outbound = None
        if self._smtp is not None:
            await self._smtp.close(grace=10)
            self._smtp = None
        for server in self._pop3:
            await server.close()
        self._pop3.clear()
        for imap in self._imap:
            await imap.close()
        self._imap.clear()
        if self._ingest is not None:
            await self._ingest.close()
            self._ingest = None
        if self._background:
            await asyncio.wait(set(self._background), timeout=10)
        if self.bus is not None:
            # Before HTTP: closing the bus ends every SSE stream and subscription, which
            # uvicorn would otherwise wait for (an SSE response lasts as long as its client).
            await self.bus.close()
            self.bus = None
        if self._http is not None and self._http_task is not None:
            self._http.should_exit = True
            await self._http_task
            self._http = None
        if self._dns_checks is not None:
            await self._dns_checks.stop()
            self._dns_checks = None
        if self._node_sync is not None:
            await self._node_sync.stop()
            self._node_sync = None
        if self.db is not None:
            await self.db.close()
            self.db = None
