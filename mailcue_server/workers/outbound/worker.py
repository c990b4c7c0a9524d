"""The delivery worker: claims due messages from the queue and delivers them, node by node.

Each node runs one :class:`OutboundWorker`. It claims due messages with a
lease (``store/outbound.py``), renews the leases of what it is working on,
and for each message makes one attempt per recipient domain (or one through
the relay), records every recipient's outcome, bounces the recipients that
failed for good in that attempt (one DSN per attempt, each recipient once),
then either puts the message back in line with exponential backoff for the
deferred ones or closes it. Several nodes on one PostgreSQL database share the queue; one
that dies lets its leases run out and the others carry on.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import os
import secrets
import socket
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import dns.exception

from mailcue_server.config import RelayTls, Settings
from mailcue_server.errors import ConfigError
from mailcue_server.events.bus import EventBus
from mailcue_server.store import outbound
from mailcue_server.store.dns_lookup import make_resolver
from mailcue_server.store.outbound import Claimed, Outcome, RecipientReport
from mailcue_server.store.outbound_models import RecipientState
from mailcue_server.workers.outbound.bounces import Bouncer
from mailcue_server.workers.outbound.delivery import MxDelivery, RelayDelivery
from mailcue_server.workers.outbound.mta_sts import PolicyFetcher
from mailcue_server.workers.outbound.transfer import SessionConfig, deferred

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
KEEP_FINISHED = timedelta(days=7)
PURGE_EVERY = timedelta(hours=1)
MIN_SLEEP = 0.05  # seconds; never spin when a due message is claimed elsewhere
STOP_GRACE = 10.0


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetrySchedule:
    """Exponential backoff: ``base``, doubling, at most ``cap``; bounce after ``give_up_after``."""

    base: float
    cap: float
    give_up_after: float

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrySchedule:
        return cls(
            settings.outbound_retry_base,
            settings.outbound_retry_max,
            settings.outbound_give_up_after,
        )

    def delay(self, attempts: int) -> timedelta:
        """The wait after the ``attempts``-th failed attempt (1, 2, ...)."""
        doublings = min(max(attempts - 1, 0), 40)
        return timedelta(seconds=min(self.base * 2**doublings, self.cap))

    def deadline(self, queued_at: datetime) -> datetime:
        return queued_at + timedelta(seconds=self.give_up_after)


def node_name() -> str:
    """This worker's name in ``lease_owner``: host, process and a random tag."""
    return f"{socket.gethostname()[:20]}-{os.getpid()}-{secrets.token_hex(3)}"


class OutboundWorker:
    """Delivers the outbound queue; ``start()`` runs it as a task, ``stop()`` ends it.

    Args:
        settings: Delivery settings (``MAILCUE_OUTBOUND_*``, ``MAILCUE_RELAY_*``).
        live: The settings in force now; the relay (host, port, TLS mode) and the
            extra CA file are read from it before each attempt, so
            ``PUT /system/settings`` needs no restart.
        bus: Where bounces stored in a local INBOX announce themselves.
        secret_key: Opens our domain's DKIM key to sign bounces sent away.
        lease: How long a claim lasts without renewal.
        clock: The current time (UTC).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        bus: EventBus,
        secret_key: str | None = None,
        live: Callable[[], Settings] | None = None,
        lease: timedelta = LEASE,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        self.schedule = RetrySchedule.from_settings(settings)
        self.owner = node_name()
        self._live = live or (lambda: settings)
        self._lease = lease
        self._clock = clock
        self._session = SessionConfig(
            settings.effective_hostname,
            settings.outbound_timeout,
            _verified_context(settings.outbound_ca_file),
        )
        self._ca_file = settings.outbound_ca_file
        self._relay: RelayDelivery | None = None
        self._relay_at: tuple[str, int, RelayTls, str, str, str] = (
            "",
            0,
            RelayTls.STARTTLS,
            "",
            "",
            "",
        )
        self._mx: MxDelivery | None = _mx_delivery(settings, self._session, clock)
        self._follow_live()
        self._bouncer = Bouncer(settings, bus, secret_key)
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Run in the background (from a task that holds the database context)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mailcue-outbound")
            self._heartbeat = asyncio.create_task(self._beat(), name="mailcue-outbound-leases")

    def wake(self) -> None:
        """Look at the queue now (call after enqueueing in this process)."""
        self._wake.set()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop claiming; let deliveries under way finish for ``grace`` s, give back the rest."""
        for task in (self._task, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._heartbeat = None
        if not self._inflight:
            return
        running = dict(self._inflight)
        _, unfinished = await asyncio.wait(running.values(), timeout=grace)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        cut = [token for token, task in running.items() if task in unfinished]
        try:
            await outbound.release(cut)
        except Exception:  # the leases run out by themselves
            log.exception("could not give back %d claimed messages", len(cut))

    async def run_once(self) -> int:
        """Claim what is due and deliver it before returning; returns how many were claimed."""
        claimed = await outbound.claim_due(
            self.owner,
            now=self._clock(),
            lease=self._lease,
            limit=self.settings.outbound_concurrency,
        )
        await asyncio.gather(*(self._process(message) for message in claimed))
        return len(claimed)

    async def _run(self) -> None:
        next_purge = self._clock()
        poll = self.settings.outbound_poll_interval
        while True:
            self._wake.clear()
            timeout = poll
            try:
                await self._claim()
                now = self._clock()
                if now >= next_purge:
                    await outbound.purge_finished(now - KEEP_FINISHED)
                    next_purge = now + PURGE_EVERY
                timeout = await self._sleep_time(poll)
            except Exception:  # a database hiccup: look again at the next poll
                log.exception("outbound queue poll failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _claim(self) -> None:
        free = self.settings.outbound_concurrency - len(self._inflight)
        if free <= 0:
            return
        claimed = await outbound.claim_due(
            self.owner, now=self._clock(), lease=self._lease, limit=free
        )
        for message in claimed:
            task = asyncio.create_task(self._process(message), name=f"outbound-{message.id}")
            self._inflight[message.token] = task
            task.add_done_callback(functools.partial(self._done, message.token))

    def _done(self, token: str, _task: asyncio.Task[None]) -> None:
        self._inflight.pop(token, None)
        self._wake.set()  # a slot is free

    async def _sleep_time(self, poll: float) -> float:
        if len(self._inflight) >= self.settings.outbound_concurrency:
            return poll
        now = self._clock()
        due = await outbound.next_due(now)
        if due is None:
            return poll
        return min(poll, max(MIN_SLEEP, (due - now).total_seconds()))

    async def _beat(self) -> None:
        """Renew the leases of messages being delivered, so no other node takes them."""
        while True:
            await asyncio.sleep(self._lease.total_seconds() / 3)
            if self._inflight:
                try:
                    await outbound.renew_leases(list(self._inflight), self._clock() + self._lease)
                except Exception:
                    log.exception("renewing outbound leases failed")

    async def _process(self, message: Claimed) -> None:
        try:
            if message.recipients:
                await self._attempt(message)
            await self._settle(message)
        except outbound.LeaseLost:
            log.warning("queued message %s was taken over by another worker", message.id)
        except Exception as exc:
            log.exception("delivery of queued message %s failed", message.id)
            later = self._clock() + self.schedule.delay(message.attempts)
            with contextlib.suppress(Exception):
                await outbound.reschedule(
                    message.id, message.token, at=later, error=f"internal error: {exc}"
                )

    def _follow_live(self) -> None:
        """Deliver with the settings in force now: the CA file, and the relay or each MX."""
        settings = self._live()
        if settings.outbound_ca_file != self._ca_file:
            self._ca_file = settings.outbound_ca_file
            self._session = dataclasses.replace(
                self._session, verified=_live_context(settings.outbound_ca_file)
            )
            self._mx = _mx_delivery(self.settings, self._session, self._clock)
        # The CA file is part of the key: a relay session must trust what the MX ones do;
        # so is the login, which an admin may fix while mail waits.
        where = (
            settings.relay_host,
            settings.relay_port,
            settings.relay_tls,
            self._ca_file,
            settings.relay_username,
            settings.relay_password,
        )
        if where == self._relay_at:
            return
        self._relay_at = where
        self._relay = None
        if settings.relay_host:
            login = settings.relay_username
            credentials = (login, settings.relay_password) if login else None
            config = dataclasses.replace(self._session, credentials=credentials)
            self._relay = RelayDelivery(settings, config)
        relay = f"relay {where[0]}:{where[1]} ({settings.relay_tls})"
        log.info("outbound delivery: %s", relay if self._relay else "MX")

    async def _attempt(self, message: Claimed) -> None:
        """One try for every pending recipient; outcomes are stored as each domain answers."""
        self._follow_live()
        if self._relay is not None:
            outcomes = await self._relay.deliver(
                message.mail_from, message.recipients, message.raw, message.dsn
            )
            await outbound.record(message.id, message.token, outcomes, self._clock())
            return
        groups: dict[str, list[tuple[str, str]]] = {}
        for address, domain in message.recipients:
            groups.setdefault(domain, []).append((address, domain))
        results = await asyncio.gather(
            *(self._to_domain(message, domain, group) for domain, group in groups.items()),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _to_domain(
        self, message: Claimed, domain: str, recipients: Sequence[tuple[str, str]]
    ) -> None:
        outcomes: list[Outcome]
        if self._mx is None:
            text = "no DNS resolver is configured (MAILCUE_DNS_RESOLVER)"
            outcomes = deferred([address for address, _ in recipients], text, status="4.4.3")
        else:
            outcomes = await self._mx.deliver(
                domain, message.mail_from, recipients, message.raw, message.dsn
            )
        await outbound.record(message.id, message.token, outcomes, self._clock())

    async def _settle(self, message: Claimed) -> None:
        """Bounce what failed for good in this attempt, then retry later or close."""
        reports = await outbound.recipients_of(message.id)
        now = self._clock()
        pending = [r for r in reports if r.state == RecipientState.PENDING]
        expired = bool(pending) and now >= self.schedule.deadline(message.created_at)
        if expired:
            await outbound.give_up(message.id, message.token, now=now)
            reports = await outbound.recipients_of(message.id)
            pending = []
        # Told once: a DSN per attempt for its new failures, never one for earlier ones.
        unreported = [
            r for r in reports if r.state == RecipientState.FAILED and r.bounced_at is None
        ]
        if unreported:
            await self._bouncer.bounce(message, unreported, now)
            addresses = [r.address for r in unreported]
            await outbound.mark_bounced(message.id, message.token, addresses, now)
        if pending:
            at = min(
                now + self.schedule.delay(message.attempts),
                self.schedule.deadline(message.created_at),
            )
            await outbound.reschedule(message.id, message.token, at=at, error=_summary(pending))
            log.info("queued message %s deferred until %s", message.id, at.isoformat())
            return
        failed = [r for r in reports if r.state == RecipientState.FAILED]
        final = await outbound.finish(message.id, message.token, error=_summary(failed))
        log.info("queued message %s closed: %s", message.id, final)


def _verified_context(ca_file: str) -> ssl.SSLContext:
    """The system's trusted CAs, plus those of ``MAILCUE_OUTBOUND_CA_FILE`` (or the
    ``outbound_ca_file`` saved with ``PUT /system/settings``).

    Raises:
        ConfigError: The CA file cannot be read or holds no certificate.
    """
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"MAILCUE_OUTBOUND_CA_FILE: cannot load {ca_file}: {exc}") from None
    return context


def _live_context(ca_file: str) -> ssl.SSLContext:
    """Like :func:`_verified_context` for a value changed while running: a CA file this
    node cannot load is logged and left out (the system's CAs stay trusted), so
    deliveries that need it fail verification and are retried, never sent unverified."""
    try:
        return _verified_context(ca_file)
    except ConfigError as exc:
        log.error("outbound delivery trusts only the system CAs: %s", exc.message)
        return ssl.create_default_context()


def _mx_delivery(
    settings: Settings, config: SessionConfig, clock: Callable[[], datetime]
) -> MxDelivery | None:
    try:
        resolver = make_resolver(settings.dns_nameserver)
    except dns.exception.DNSException as exc:
        log.error("outbound delivery has no DNS resolver: %s", exc)
        return None
    policies = PolicyFetcher(
        resolver,
        port=settings.outbound_mta_sts_port,
        tls_context=config.verified,
        timeout=settings.outbound_timeout,
        clock=clock,
    )
    return MxDelivery(resolver, policies, config, port=settings.outbound_smtp_port)


def _summary(reports: Sequence[RecipientReport]) -> str:
    """The last error of each recipient, for the admin view (bounded)."""
    text = "; ".join(f"{r.address}: {r.diagnostic}" for r in reports if r.diagnostic)
    return text[:2000]
