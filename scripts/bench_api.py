"""Measure the mail API of a real ``mailcue serve`` holding a large mailbox.

Usage: python scripts/bench_api.py [--messages 100000] [--requests 200] [--events 50]

One run: a fresh data dir, ``mailcue serve`` as a child process on free ports
(SQLite, in-process bus), one mailbox filled through ``POST /emails/bulk-inject``
(1,000 per call), then sequential requests over one keep-alive connection:

- ``GET /emails`` page 1 (page_size 50) and a page half way down the folder;
- ``GET /emails?search=`` for a word in about 1 % of the messages, and a phrase;
- ``GET /emails/{uid}`` of random messages;
- the SSE delay: from the SMTP ``250`` after DATA to the ``email.received``
  event on ``GET /events/stream``.

Prints median and p99 of each in milliseconds, and the fill rate. Targets on
two cores (issue 4): list p50 under 20 ms, search p50 under 50 ms, event under 50 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib
import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
PORT_VARIABLES = ("HTTP", "SMTP", "SUBMISSION", "SMTPS", "IMAP", "IMAPS", "POP3", "POP3S")
LISTENING = re.compile(r"listening: (\S+)\s+(\S+):(\d+)\s*$")
ADMIN_PASSWORD = "bench-admin-" + secrets.token_hex(6)
ADDRESS = "bench@mailcue.local"
RARE_WORD = "zanzibar"  # in 1 % of the messages
WORDS = (
    "invoice", "shipment", "account", "order", "confirm", "password", "reset", "welcome",
    "weekly", "digest", "report", "meeting", "agenda", "update", "release", "notes",
    "customer", "support", "ticket", "status", "payment", "receipt", "travel", "booking",
)  # fmt: skip


class Node:
    """``mailcue serve`` in a child process; a thread reads the listening lines it logs."""

    def __init__(self, data_dir: Path) -> None:
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MAILCUE_")}
        env.update({f"MAILCUE_{name}_PORT": "0" for name in PORT_VARIABLES})
        env.update(
            PYTHONPATH=str(REPO_ROOT),
            MAILCUE_DATA_DIR=str(data_dir),
            MAILCUE_ADMIN_PASSWORD=ADMIN_PASSWORD,
        )
        self.ports: dict[str, int] = {}
        self._ready = threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailcue_server.cli", "serve"],
            env=env,
            cwd=data_dir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if match := LISTENING.search(line):
                self.ports[match.group(1)] = int(match.group(3))
                if "http" in self.ports and "smtp" in self.ports:
                    self._ready.set()

    def wait(self, timeout: float = 60) -> None:
        if not self._ready.wait(timeout):
            raise SystemExit("mailcue serve did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def report(name: str, samples: list[float]) -> None:
    print(
        f"{name:<34} p50 {statistics.median(samples):7.1f} ms   "
        f"p99 {percentile(samples, 0.99):7.1f} ms   (n={len(samples)})"
    )


def bulk_item(n: int, start: datetime) -> dict[str, object]:
    rng = random.Random(n)
    words = rng.choices(WORDS, k=40)
    if n % 100 == 7:
        words[rng.randrange(len(words))] = RARE_WORD
    return {
        "mailbox": ADDRESS,
        "from_address": f"sender{n % 500}@example{n % 7}.org",
        "to_addresses": [ADDRESS],
        "subject": f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} #{n}",
        "text_body": " ".join(words) + "\n",
        "date": (start + timedelta(seconds=n)).isoformat(),
        "realistic_headers": False,
    }


async def fill(http: httpx.AsyncClient, count: int) -> float:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    began = time.perf_counter()
    for first in range(0, count, 1000):
        batch = [bulk_item(n, start) for n in range(first, min(count, first + 1000))]
        response = await http.post("/api/v1/emails/bulk-inject", json={"emails": batch})
        response.raise_for_status()
        if response.json()["failed"]:
            raise SystemExit(f"bulk inject failed: {response.text[:300]}")
    return count / (time.perf_counter() - began)


async def timed(requests: int, call: Callable[[int], Awaitable[httpx.Response]]) -> list[float]:
    samples = []
    for i in range(requests):
        began = time.perf_counter()
        response = await call(i)
        samples.append((time.perf_counter() - began) * 1000)
        response.raise_for_status()
    return samples


async def event_delays(
    http: httpx.AsyncClient, smtp_port: int, events: int
) -> tuple[list[float], list[float]]:
    """Send ``events`` messages one at a time; time each one's SSE event.

    Returns two series: from the client's ``MAIL FROM`` to the event, and from
    the ``250`` after DATA to the event. The server publishes after its commit
    and before it writes the ``250``, so the second is often a little negative:
    the event is already on its way when the client learns that the mail was taken.
    """
    arrived: asyncio.Queue[tuple[str, float]] = asyncio.Queue()

    async def listen() -> None:
        async with http.stream("GET", "/api/v1/events/stream", timeout=None) as stream:
            kind = ""
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    kind = line[6:].strip()
                elif line.startswith("data:") and kind == "email.received":
                    data = json.loads(line[5:])
                    arrived.put_nowait((str(data.get("subject", "")), time.perf_counter()))

    listener = asyncio.create_task(listen())
    await asyncio.sleep(0.5)  # let the stream subscribe
    from_start, from_250 = [], []
    async with aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port, start_tls=False) as smtp:
        for n in range(events):
            subject = f"sse-{n}-{secrets.token_hex(3)}"
            raw = f"From: a@example.org\r\nTo: {ADDRESS}\r\nSubject: {subject}\r\n\r\nhi\r\n"
            began = time.perf_counter()
            await smtp.sendmail("a@example.org", [ADDRESS], raw.encode())
            accepted = time.perf_counter()
            while True:
                got, when = await asyncio.wait_for(arrived.get(), 10)
                if got == subject:
                    from_start.append((when - began) * 1000)
                    from_250.append((when - accepted) * 1000)
                    break
    listener.cancel()
    return from_start, from_250


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="mailcue-bench-api-") as tmp:
        node = Node(Path(tmp))
        try:
            node.wait()
            base = f"http://127.0.0.1:{node.ports['http']}"
            async with httpx.AsyncClient(base_url=base, timeout=120) as http:
                login = await http.post(
                    "/api/v1/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD}
                )
                login.raise_for_status()
                http.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
                made = await http.post(
                    "/api/v1/mailboxes",
                    json={
                        "username": "bench",
                        "password": "bench-password",
                        "domain": "mailcue.local",
                    },
                )
                made.raise_for_status()
                rate = await fill(http, args.messages)
                print(f"filled {args.messages} messages by bulk-inject at {rate:,.0f} msg/s")
                listing: dict[str, str | int] = {"mailbox": ADDRESS, "page_size": 50}
                deep = max(1, args.messages // 100)  # half way down at 50 per page
                rng = random.Random(1)
                report(
                    "GET /emails page 1",
                    await timed(
                        args.requests, lambda _: http.get("/api/v1/emails", params=listing)
                    ),
                )
                report(
                    f"GET /emails page {deep}",
                    await timed(
                        args.requests,
                        lambda _: http.get("/api/v1/emails", params={**listing, "page": deep}),
                    ),
                )
                report(
                    f"search '{RARE_WORD}' (1 %)",
                    await timed(
                        args.requests,
                        lambda _: http.get(
                            "/api/v1/emails", params={**listing, "search": RARE_WORD}
                        ),
                    ),
                )
                report(
                    "search from:sender42@example0.org",
                    await timed(
                        args.requests,
                        lambda _: http.get(
                            "/api/v1/emails",
                            params={**listing, "search": "from:sender42@example0.org"},
                        ),
                    ),
                )
                report(
                    'search "weekly digest"',
                    await timed(
                        args.requests,
                        lambda _: http.get(
                            "/api/v1/emails", params={**listing, "search": '"weekly digest"'}
                        ),
                    ),
                )
                report(
                    "GET /emails/{uid}",
                    await timed(
                        args.requests,
                        lambda _: http.get(
                            f"/api/v1/emails/{rng.randint(1, args.messages)}",
                            params={"mailbox": ADDRESS},
                        ),
                    ),
                )
                from_start, from_250 = await event_delays(http, node.ports["smtp"], args.events)
                report("SMTP MAIL FROM -> SSE event", from_start)
                report("SMTP 250 -> SSE event", from_250)
        finally:
            node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--events", type=int, default=50)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
