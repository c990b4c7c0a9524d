"""Delivering one message's recipients: to each domain's MX, or all through the relay.

MX delivery (RFC 5321 section 5): for one recipient domain, look up its MX
hosts, learn its MTA-STS policy, and try host after host (and address after
address) until one holds a session. Under an ``enforce`` policy only hosts
the policy lists are tried, and only over STARTTLS with a certificate valid
for the host's name; when none qualifies the recipients are deferred, never
sent in plaintext. Otherwise STARTTLS is used whenever it is offered.
When none of the hosts tried has an address, :func:`routing.unroutable`
decides whether that fails the recipients for good or defers them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dns.asyncresolver

from mailcue_server.config import RelayTls, Settings
from mailcue_server.mail.dsn_params import DsnRequest
from mailcue_server.store.outbound import Outcome
from mailcue_server.store.outbound_models import RecipientState
from mailcue_server.workers.outbound import routing
from mailcue_server.workers.outbound.mta_sts import PolicyFetcher
from mailcue_server.workers.outbound.transfer import (
    Envelope,
    Server,
    SessionConfig,
    TlsMode,
    TryElsewhere,
    deferred,
    transfer,
)

log = logging.getLogger(__name__)

_RELAY_TLS = {
    RelayTls.STARTTLS: TlsMode.REQUIRED,
    RelayTls.TLS: TlsMode.IMPLICIT,
    RelayTls.NONE: TlsMode.NONE,
}


class MxDelivery:
    """Sends a domain's recipients to that domain's mail hosts."""

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        policies: PolicyFetcher,
        config: SessionConfig,
        *,
        port: int,
    ) -> None:
        self._resolver = resolver
        self._policies = policies
        self._config = config
        self._port = port

    async def deliver(
        self,
        domain: str,
        mail_from: str,
        recipients: Sequence[tuple[str, str]],
        raw: bytes,
        dsn: DsnRequest | None = None,
    ) -> list[Outcome]:
        """One attempt for the recipients (``(address, ascii domain)``) of one domain."""
        queued = [address for address, _ in recipients]
        wire = tuple((a, _wire(a, domain)) for a in queued)
        envelope = Envelope(mail_from, wire, raw, dsn or DsnRequest())
        try:
            hosts = await routing.mail_hosts(self._resolver, domain)
        except routing.RouteError as failure:
            return _unrouted(queued, failure)
        policy = await self._policies.policy_for(domain)
        tls = TlsMode.OPPORTUNISTIC
        every_host = True
        if policy is not None and policy.enforced:
            tls = TlsMode.REQUIRED
            allowed = [host for host in hosts if policy.allows(host.name)]
            if not allowed:
                names = ", ".join(host.name for host in hosts)
                text = f"no MX of {domain} ({names}) is allowed by its MTA-STS policy"
                return deferred(queued, text, status="4.7.5")
            every_host = len(allowed) == len(hosts)
            hosts = allowed
        last: TryElsewhere | None = None
        misses: list[routing.HostAddresses] = []
        for host in hosts:
            found = await routing.host_addresses(self._resolver, host.name)
            if not found.addresses:
                misses.append(found)
            for address in found.addresses:
                try:
                    return await transfer(
                        Server(address, self._port, host.name), envelope, self._config, tls
                    )
                except TryElsewhere as refused:
                    log.info("delivery to %s (%s): %s", host.name, address, refused.text)
                    last = refused
        if last is None:  # no host had an address to try
            return _unrouted(queued, routing.unroutable(domain, misses, every_host=every_host))
        return deferred(queued, last.text, code=last.code, status=last.status)


class RelayDelivery:
    """Hands every recipient to the configured smarthost, logging in when asked to."""

    def __init__(self, settings: Settings, config: SessionConfig) -> None:
        self._server = Server(settings.relay_host, settings.relay_port, settings.relay_host)
        self._tls = _RELAY_TLS[settings.relay_tls]
        self._config = config

    async def deliver(
        self,
        mail_from: str,
        recipients: Sequence[tuple[str, str]],
        raw: bytes,
        dsn: DsnRequest | None = None,
    ) -> list[Outcome]:
        """One attempt for all pending recipients of a message."""
        wire = tuple((a, _wire(a, d)) for a, d in recipients)
        envelope = Envelope(mail_from, wire, raw, dsn or DsnRequest())
        try:
            return await transfer(self._server, envelope, self._config, self._tls)
        except TryElsewhere as refused:
            queued = [address for address, _ in recipients]
            host = self._server.name
            return deferred(
                queued, refused.text, code=refused.code, status=refused.status, host=host
            )


def _unrouted(queued: Sequence[str], failure: routing.RouteError) -> list[Outcome]:
    """Every recipient failed (permanent) or deferred for a routing reason; no server answered."""
    state = RecipientState.FAILED if failure.permanent else RecipientState.PENDING
    return [Outcome(address, state, 0, failure.status, failure.text) for address in queued]


def _wire(address: str, ascii_domain: str) -> str:
    """The address as sent: an ASCII local part gets the A-label domain (no SMTPUTF8 needed)."""
    local = address.rpartition("@")[0]
    return f"{local}@{ascii_domain}" if local.isascii() else address
