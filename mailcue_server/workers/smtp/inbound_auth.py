"""SPF, DKIM and DMARC checks of mail received on the inbound ``smtp`` listener.

:func:`authenticate` returns the ``Authentication-Results`` field (RFC 8601)
the SMTP worker puts above its ``Received`` field. The checks come from
libraries: pyspf evaluates SPF (RFC 7208), dkimpy verifies each DKIM-Signature
(RFC 6376, through :mod:`mailcue_server.mail.dkim`), and the ``dmarc`` library
decides DMARC (RFC 7489, through :mod:`mailcue_server.mail.auth_results`).

Every DNS question goes to the configured resolver through
:func:`mailcue_server.store.dns_lookup.query`, and all of one message's
questions share one deadline: an unreachable or silent DNS server makes the
affected results ``temperror`` within ``timeout`` seconds, never an exception
and never a 451. pyspf asks its questions synchronously while it walks a
record, so it runs in a worker thread whose questions are answered on the
event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ipaddress
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import dns.asyncresolver
import dns.exception
import spf

from mailcue_server.mail import dkim as mail_dkim
from mailcue_server.mail.auth_results import (
    NONE,
    PERMERROR,
    TEMPERROR,
    AuthenticationResults,
    DkimCheck,
    DmarcCheck,
    SpfCheck,
    claims_in,
    dmarc_record,
    evaluate_dmarc,
    from_domains,
    header_field,
    organizational_domain,
)
from mailcue_server.mail.dns_records import Lookup
from mailcue_server.mail.header_block import header_items, split_head
from mailcue_server.store.dns_lookup import make_resolver, query

log = logging.getLogger(__name__)

MAX_SIGNATURES = 8
"""DKIM signatures verified per message; RFC 6376 section 6.1 lets a verifier limit them."""
THREAD_GRACE = 0.5
"""Seconds the SPF thread may outlive the deadline before its result is given up."""

_T = TypeVar("_T")
_NO_POLICY: tuple[str | None, str | None, str | None] = (None, None, "the check failed")


class _Dns:
    """The configured resolver, with one deadline shared by every question of a message."""

    def __init__(self, resolver: dns.asyncresolver.Resolver | None, deadline: float, why: str):
        self._resolver = resolver
        self._deadline = deadline
        self._why = why

    def remaining(self) -> float:
        return self._deadline - asyncio.get_running_loop().time()

    async def ask(self, name: str, rdtype: str) -> Lookup:
        """One question; a missing resolver, or no time left, is an unknown answer."""
        if self._resolver is None:
            return Lookup(error=self._why)
        remaining = self.remaining()
        if remaining <= 0:
            return Lookup(error=f"no time left to ask {name} {rdtype}")
        try:
            return await asyncio.wait_for(query(self._resolver, name, rdtype), remaining)
        except TimeoutError:
            return Lookup(error=f"no answer for {name} {rdtype} in time")


def _resolver(nameserver: tuple[str, int] | None, timeout: float) -> _Dns:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        resolver = make_resolver(nameserver)
    except dns.exception.DNSException as exc:
        return _Dns(None, deadline, f"no DNS resolver is configured: {exc}")
    # Two tries per server within the budget, so one lost UDP packet is not a temperror.
    resolver.timeout = max(timeout / 2, 0.1)
    resolver.lifetime = timeout
    return _Dns(resolver, deadline, "")


# --- SPF ---------------------------------------------------------------------------------


def _pyspf_answers(rdtype: str, lookup: Lookup) -> list[Any]:
    """A lookup in the shape pyspf's own DNS layer returns for the type."""
    if lookup.error is not None:
        raise spf.TempError(f"DNS {lookup.error}")
    if rdtype in ("TXT", "SPF"):
        # One list of strings per record; ours are already joined into one.
        return [[value.encode("utf-8", "surrogateescape")] for value in lookup.values]
    if rdtype == "MX":
        exchanges = []
        for value in lookup.values:
            preference, _, host = value.partition(" ")
            exchanges.append((int(preference), host))
        return exchanges
    if rdtype == "PTR":
        return [value.rstrip(".") for value in lookup.values]
    return list(lookup.values)


class _SpfQuery(spf.query):  # type: ignore[misc] # pyspf has no type information
    """pyspf's evaluation, with its DNS questions asked through our resolver.

    pyspf's module-level lookup uses the process-wide default resolver; its
    ``query.dns`` method is the one place a question is asked, so this
    override answers them instead (and keeps pyspf's cache and RFC 7208
    section 4.6.4 void-lookup limit).
    """

    def __init__(self, ask: Callable[[str, str], Lookup], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ask = ask

    def dns(
        self, name: str, qtype: str, cnames: object = None, ignore_void: bool = False
    ) -> list[Any]:
        host = str(name).rstrip(".").lower()
        if not host or not all(0 < len(label) < 64 for label in host.split(".")):
            return []  # not a DNS name: no answer, as pyspf's own layer says
        key = (host, qtype)
        if key not in self.cache:
            self.cache[key] = _pyspf_answers(qtype, self._ask(host, qtype))
        answers: list[Any] = self.cache[key]
        if not answers and not ignore_void:
            self.void_lookups += 1
            if self.void_lookups > spf.MAX_VOID_LOOKUPS:
                raise spf.PermError(f"Void lookup limit of {spf.MAX_VOID_LOOKUPS} exceeded")
        return list(answers)  # pyspf sorts MX answers in place


def _client_ip(peer_ip: str) -> str | None:
    try:
        address = ipaddress.ip_address(peer_ip)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


async def _spf(dns_: _Dns, *, peer_ip: str, helo: str, mail_from: str, hostname: str) -> SpfCheck:
    """RFC 7208 ``check_host()`` for MAIL FROM, or for HELO when the reverse-path is null."""
    ip = _client_ip(peer_ip)
    helo_identity = not mail_from
    identity = helo if helo_identity else mail_from.rpartition("@")[2]
    if ip is None or not identity:
        return SpfCheck(NONE, identity or None, helo_identity, "nothing to check")
    loop = asyncio.get_running_loop()
    wait = max(dns_.remaining(), 0) + THREAD_GRACE

    def ask(name: str, rdtype: str) -> Lookup:
        # Bounded even if the loop stops meanwhile, so the thread never outlives shutdown.
        future = asyncio.run_coroutine_threadsafe(dns_.ask(name, rdtype), loop)
        try:
            return future.result(timeout=wait)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise spf.TempError(f"DNS no answer for {name} {rdtype} in time") from None

    def evaluate() -> SpfCheck:
        check = _SpfQuery(ask, i=ip, s=mail_from, h=helo, receiver=hostname)
        result, _code, explanation = check.check()
        domain = helo if check.ident == "helo" else check.o
        return SpfCheck(result, domain or None, check.ident == "helo", explanation)

    try:
        return await asyncio.wait_for(asyncio.to_thread(evaluate), wait)
    except TimeoutError:
        return SpfCheck(TEMPERROR, identity, helo_identity, "SPF check ran out of time")


# --- DKIM --------------------------------------------------------------------------------


def _signature_count(raw: bytes) -> int:
    head, _ = split_head(raw)
    return sum(1 for name, _ in header_items(head) if name.strip().lower() == "dkim-signature")


async def _dkim(dns_: _Dns, raw: bytes) -> tuple[DkimCheck, ...]:
    """One verdict per signature, keys fetched concurrently before dkimpy verifies."""
    count = min(_signature_count(raw), MAX_SIGNATURES)
    if not count:
        return ()
    names = await asyncio.to_thread(
        lambda: [mail_dkim.signature_key_name(raw, index) for index in range(count)]
    )
    wanted = sorted({name.lower() for name in names if name})
    answers = dict(
        zip(wanted, await asyncio.gather(*(dns_.ask(name, "TXT") for name in wanted)), strict=True)
    )

    def key_record(name: str) -> str | None:
        answer = answers.get(name.lower())
        if answer is None:
            raise OSError(f"{name} was not fetched")
        if answer.error is not None:
            raise TimeoutError(answer.error)
        return answer.values[0] if answer.values else None

    def verify_all() -> list[mail_dkim.DkimVerification]:
        # Hashing the body is CPU work proportional to the message: off the event loop.
        return [mail_dkim.verify(raw, key_record, index) for index in range(count)]

    verdicts = await asyncio.to_thread(verify_all)
    return tuple(
        DkimCheck(str(verdict.result), verdict.domain, verdict.selector, verdict.reason)
        for verdict in verdicts
    )


# --- DMARC -------------------------------------------------------------------------------


async def _dmarc_policy(dns_: _Dns, domain: str) -> tuple[str | None, str | None, str | None]:
    """RFC 7489 section 6.6.3: the From domain's record, else its Organizational Domain's.

    Returns:
        ``(record, org_domain, error)``: ``org_domain`` is set when its record
        was the one found; ``error`` when DNS could not say.
    """
    org = organizational_domain(domain)
    names = [domain] if org == domain else [domain, org]
    answers = await asyncio.gather(*(dns_.ask(f"_dmarc.{name}", "TXT") for name in names))
    for name, answer in zip(names, answers, strict=True):
        if answer.error is not None:
            return None, None, answer.error
        record = dmarc_record(answer.values)
        if record is not None:
            return record, (org if name != domain else None), None
    return None, None, None


async def _dmarc(
    policy: Awaitable[tuple[str | None, str | None, str | None]] | None,
    domains: list[str],
    spf_check: SpfCheck,
    dkim_checks: tuple[DkimCheck, ...],
) -> DmarcCheck:
    if policy is None:
        if not domains:
            return DmarcCheck(PERMERROR, reason="the message has no From address")
        return DmarcCheck(PERMERROR, reason="From names several domains")
    record, org, error = await policy
    if error is not None:
        return DmarcCheck(TEMPERROR, domains[0], reason=f"DMARC lookup failed: {error}")
    return evaluate_dmarc(domains[0], record, org_domain=org, spf=spf_check, dkim=dkim_checks)


# --- together ----------------------------------------------------------------------------


async def _guarded(check: Awaitable[_T], fallback: _T, what: str) -> _T:
    """Run one check; a bug in it costs that result (temperror), not the message."""
    try:
        return await check
    except Exception:
        # The boundary of one check (STYLE rule 24): log it, report temperror.
        log.exception("inbound %s check failed", what)
        return fallback


async def check_message(
    raw: bytes,
    *,
    peer_ip: str,
    helo: str,
    mail_from: str,
    hostname: str,
    nameserver: tuple[str, int] | None,
    timeout: float,  # noqa: ASYNC109 - the DNS budget the resolver gets, not a cancel scope
) -> AuthenticationResults:
    """SPF, DKIM and DMARC for one message, every lookup within ``timeout`` seconds."""
    dns_ = _resolver(nameserver, timeout)
    domains = from_domains(raw)
    policy = (
        asyncio.ensure_future(_guarded(_dmarc_policy(dns_, domains[0]), _NO_POLICY, "DMARC"))
        if len(domains) == 1
        else None
    )
    spf_fallback = SpfCheck(TEMPERROR, reason="SPF check failed")
    spf_check, dkim_checks = await asyncio.gather(
        _guarded(
            _spf(dns_, peer_ip=peer_ip, helo=helo, mail_from=mail_from, hostname=hostname),
            spf_fallback,
            "SPF",
        ),
        _guarded(_dkim(dns_, raw), (DkimCheck(TEMPERROR, reason="DKIM check failed"),), "DKIM"),
    )
    verdict = await _dmarc(policy, domains, spf_check, dkim_checks)
    return AuthenticationResults(hostname, spf=spf_check, dmarc=verdict, dkim=dkim_checks)


async def authenticate(
    raw: bytes,
    *,
    peer_ip: str,
    helo: str,
    mail_from: str,
    hostname: str,
    nameserver: tuple[str, int] | None,
    timeout: float,  # noqa: ASYNC109 - the DNS budget the resolver gets, not a cancel scope
) -> bytes:
    """The ``Authentication-Results`` field to put above our ``Received`` field.

    Args:
        raw: The DATA content exactly as received (no header of ours yet).
        peer_ip: The SMTP client's address, the IP SPF checks.
        helo: The HELO/EHLO argument ("" if none).
        mail_from: The reverse-path without brackets ("" for the null sender).
        hostname: Our host name: the authserv-id (RFC 8601 section 2.5).
        nameserver: ``settings.dns_nameserver``; None uses the system resolver.
        timeout: Seconds all DNS lookups of this message may take together.

    Returns:
        One folded header field, CRLF-terminated, ASCII.
    """
    results = await check_message(
        raw,
        peer_ip=peer_ip,
        helo=helo,
        mail_from=mail_from,
        hostname=hostname,
        nameserver=nameserver,
        timeout=timeout,
    )
    forged = claims_in(raw, hostname)
    if forged:
        # Kept byte for byte, but never read: only fields above Received are (RFC 8601 s. 5).
        log.info("message from %s carries %d Authentication-Results of ours", peer_ip, forged)
    return header_field(results)
