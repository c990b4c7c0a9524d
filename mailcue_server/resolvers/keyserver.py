"""A client of the Verifying Key Server (VKS) API that keys.openpgp.org speaks.

Upload a key (``POST /vks/v1/upload``), ask the keyserver to mail its
verification links (``POST /vks/v1/request-verify``), and look a key up by
address (``GET /vks/v1/by-email/<address>``), as documented at
https://keys.openpgp.org/about/api. Every call has a deadline: a keyserver
that is down or silent is reported as :class:`KeyserverUnavailable`, never
waited on forever.
"""

from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from mailcue_server import __version__
from mailcue_server.errors import UpstreamFailed

_MAX_ANSWER_BYTES = 1_000_000


class KeyserverUnavailable(UpstreamFailed):
    """The keyserver could not be reached, failed, or did not answer in time."""


@dataclass(frozen=True, slots=True)
class VksAnswer:
    """The keyserver's answer to an upload or a verification request."""

    key_fpr: str
    token: str | None
    status: dict[str, str] = field(default_factory=dict)


class VksClient:
    """One keyserver at ``base_url``, each request bounded by ``timeout`` seconds."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    async def upload(self, armored_key: str) -> VksAnswer:
        """Upload a public key; the keyserver answers its fingerprint, a token and statuses."""
        return _answer(await self._post("/vks/v1/upload", {"keytext": armored_key}))

    async def request_verify(self, token: str, addresses: list[str]) -> VksAnswer:
        """Ask the keyserver to send verification mail for ``addresses`` of an uploaded key."""
        body = {"token": token, "addresses": addresses, "locale": ["en_US"]}
        return _answer(await self._post("/vks/v1/request-verify", body))

    async def by_email(self, address: str) -> str | None:
        """The armored key published for ``address``, or ``None`` when there is none."""
        url = f"{self.base_url}/vks/v1/by-email/{quote(address, safe='@')}"
        async with self._client() as client:
            response = await self._send(client.get(url))
        if response.status_code == httpx.codes.NOT_FOUND:
            return None
        _raise_for_status(response)
        return response.text

    def _client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout),
            headers={"User-Agent": f"mailcue-server/{__version__}"},
            follow_redirects=False,
        )

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self._client() as client:
            response = await self._send(client.post(self.base_url + path, json=body))
        _raise_for_status(response)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise KeyserverUnavailable("The keyserver's answer is not a JSON object")
        return answer

    async def _send(self, request: Awaitable[httpx.Response]) -> httpx.Response:
        try:
            response = await request
        except httpx.TimeoutException:
            raise KeyserverUnavailable(
                f"The keyserver at {self.base_url} did not answer within {self.timeout:g} s",
                timed_out=True,
            ) from None
        except httpx.HTTPError as exc:
            raise KeyserverUnavailable(
                f"The keyserver at {self.base_url} could not be reached: {type(exc).__name__}"
            ) from None
        if len(response.content) > _MAX_ANSWER_BYTES:
            raise KeyserverUnavailable("The keyserver's answer is too large")
        return response


def _raise_for_status(response: httpx.Response) -> None:
    if response.is_success:
        return
    try:
        detail = response.json().get("error")
    except (ValueError, AttributeError):
        detail = None
    reason = f": {str(detail)[:300]}" if detail else ""
    raise KeyserverUnavailable(f"The keyserver answered HTTP {response.status_code}{reason}")


def _answer(body: dict[str, Any]) -> VksAnswer:
    status = body.get("status")
    token = body.get("token")
    return VksAnswer(
        key_fpr=str(body.get("key_fpr", "")),
        token=str(token) if token else None,
        status={str(k): str(v) for k, v in status.items()} if isinstance(status, dict) else {},
    )
