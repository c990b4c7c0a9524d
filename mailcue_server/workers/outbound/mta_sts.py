"""Discovering a recipient domain's MTA-STS policy (RFC 8461 section 3) and caching it.

The ``_mta-sts`` TXT record names the current policy id; the policy itself
comes from ``https://mta-sts.<domain>/.well-known/mta-sts.txt`` over verified
HTTPS without redirects. A fetched policy is kept in the database until its
``max_age`` runs out and refetched only when the TXT id changes, so a TXT
record that vanishes (or an attacker who strips it) does not switch a
protected domain back to plaintext (section 5.1). The host name is resolved
with our resolver and the connection is made to its address with the name as
SNI and certificate identity, which also lets tests point it at loopback.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable
from datetime import datetime, timedelta

import dns.asyncresolver
import dns.exception
import dns.name
import dns.resolver
import httpx

from mailcue_server.mail.mta_sts import (
    MAX_POLICY_BYTES,
    POLICY_PATH,
    InvalidPolicy,
    Policy,
    parse_policy,
    policy_id,
)
from mailcue_server.store import mta_sts_policies
from mailcue_server.store.dns_lookup import host_addresses

log = logging.getLogger(__name__)


class _NoRecord(Exception):
    """The TXT lookup said for certain that there is no usable record."""


class PolicyFetcher:
    """Finds the MTA-STS policy that applies to mail for a domain.

    Args:
        resolver: Asks the ``_mta-sts`` TXT and the policy host's addresses.
        port: HTTPS port of policy hosts (443; tests use another).
        tls_context: Verifies the policy host's certificate.
        timeout: Seconds for each fetch.
        clock: The current time (UTC).
    """

    def __init__(
        self,
        resolver: dns.asyncresolver.Resolver,
        *,
        port: int,
        tls_context: ssl.SSLContext,
        timeout: float,
        clock: Callable[[], datetime],
    ) -> None:
        self._resolver = resolver
        self._port = port
        self._tls = tls_context
        self._timeout = timeout
        self._clock = clock

    async def policy_for(self, domain: str) -> Policy | None:
        """The policy to apply now, or None when the domain has none we can use."""
        now = self._clock()
        cached = await mta_sts_policies.cached_policy(domain, now)
        try:
            announced = await self._announced_id(domain)
        except _NoRecord:
            announced = None
        except dns.exception.DNSException:
            announced = None  # unknown: a cached policy still applies (section 5.1)
        if cached is not None and (announced is None or announced == cached.policy_id):
            return _parsed(cached.policy, domain)
        if announced is None:
            return None
        text = await self._fetch(domain)
        policy = _parsed(text, domain) if text is not None else None
        if policy is None:
            # Section 3.3: without a fetchable policy (and none cached) deliver as before.
            return _parsed(cached.policy, domain) if cached is not None else None
        assert text is not None  # noqa: S101 - parsed from it
        expires = now + timedelta(seconds=policy.max_age)
        await mta_sts_policies.save_policy(domain, announced, text, now=now, expires_at=expires)
        return policy

    async def _announced_id(self, domain: str) -> str | None:
        name = dns.name.from_text(f"_mta-sts.{domain}")
        try:
            answer = await self._resolver.resolve(name, "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            raise _NoRecord from None
        records = [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]
        return policy_id(records)

    async def _fetch(self, domain: str) -> str | None:
        """The policy text from the policy host, or None (with the reason logged)."""
        host = f"mta-sts.{domain}"
        found = await host_addresses(self._resolver, host)
        if not found:
            log.info("MTA-STS: %s has no address; policy of %s not fetched", host, domain)
            return None
        authority = host if self._port == 443 else f"{host}:{self._port}"
        async with httpx.AsyncClient(
            verify=self._tls, timeout=self._timeout, follow_redirects=False, trust_env=False
        ) as client:
            for address in found:
                literal = f"[{address}]" if ":" in address else address
                try:
                    return await _download(
                        client, f"https://{literal}:{self._port}{POLICY_PATH}", host, authority
                    )
                except (httpx.HTTPError, _Refused) as exc:
                    log.info("MTA-STS: policy of %s from %s failed: %s", domain, address, exc)
        return None


class _Refused(Exception):
    """The policy host answered, but not with a policy we may use."""


async def _download(client: httpx.AsyncClient, url: str, host: str, authority: str) -> str:
    async with client.stream(
        "GET", url, headers={"Host": authority}, extensions={"sni_hostname": host}
    ) as response:
        if response.status_code != 200:  # section 3.3: redirects are not followed
            raise _Refused(f"HTTP {response.status_code}")
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "text/plain":
            raise _Refused(f"content type {media_type or 'none'} is not text/plain")
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > MAX_POLICY_BYTES:
                raise _Refused(f"policy larger than {MAX_POLICY_BYTES} bytes")
    return body.decode("utf-8", "replace")


def _parsed(text: str, domain: str) -> Policy | None:
    try:
        return parse_policy(text)
    except InvalidPolicy as exc:
        log.info("MTA-STS: the policy of %s is invalid (%s); treated as none", domain, exc)
        return None
