"""Measure ``mailcue serve`` start-up from exec: to a healthy /api/v1/health, to the first
REST and GraphQL answers a test suite would ask for, and the idle RSS once all of it ran.

Usage: python scripts/bench_startup.py [--runs 5]

Each run starts a fresh process on free ports with its own data dir (the first
start, which creates the database, the secret and the local CA), then once
more on that same data dir (a warm restart). For each it prints:

- health: seconds from exec to the first 200 from ``/api/v1/health``;
- REST: to the first ``POST /api/v1/auth/login`` answered 200 (a password hash
  included, as a test suite's first call pays it);
- GraphQL: to the first ``{ health { status } }`` answered over ``/graphql``;
- the figure the server logs itself ("ready N s after the process started");
- RSS: the server's resident memory two seconds after those requests.

Then the medians. Run it on an otherwise idle machine: every figure is wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

LISTENING = re.compile(r"listening: http\s+(http://\S+)")
READY = re.compile(r"ready ([0-9.]+) s after the process started")
ADMIN_PASSWORD = "startup-bench-password"  # noqa: S105 - a throwaway server


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _post_json(url: str, body: dict[str, object]) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback URL we just read
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _until_ok(call: object, began: float) -> float:
    """Seconds from ``began`` until ``call()`` returns 200 (connection errors retried)."""
    assert callable(call)
    while True:
        try:
            if call() == 200:
                return time.perf_counter() - began
        except OSError:
            pass
        time.sleep(0.005)


@dataclass
class Start:
    health: float
    rest: float
    graphql: float
    logged: float
    rss: float


def start_once(data_dir: Path) -> Start:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCUE_")}
    env |= {
        "MAILCUE_DATA_DIR": str(data_dir),
        "MAILCUE_HTTP_PORT": "0",
        "MAILCUE_ADMIN_PASSWORD": ADMIN_PASSWORD,
    }
    for name in ("SMTP", "SUBMISSION", "SMTPS", "IMAP", "IMAPS", "POP3", "POP3S"):
        env[f"MAILCUE_{name}_PORT"] = "0"
    began = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mailcue_server.cli", "serve"],
        env=env,
        cwd=data_dir.parent,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stderr is not None
        url = logged = None
        for line in proc.stderr:
            if match := READY.search(line):
                logged = float(match.group(1))
            if match := LISTENING.search(line):
                url = match.group(1)
            if url and logged is not None:
                break
        if url is None or logged is None:
            raise SystemExit("server exited before it was ready")

        def health() -> int:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=30) as response:  # noqa: S310
                return int(response.status)

        healthy = _until_ok(health, began)
        rest = _until_ok(
            lambda: _post_json(
                f"{url}/api/v1/auth/login", {"username": "admin", "password": ADMIN_PASSWORD}
            ),
            began,
        )
        graphql = _until_ok(
            lambda: _post_json(f"{url}/graphql", {"query": "{ health { status } }"}), began
        )
        time.sleep(2)
        return Start(healthy, rest, graphql, logged, _rss_mib(proc.pid))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    first: list[Start] = []
    again: list[Start] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            data_dir = Path(tmp) / f"run{run}" / "data"
            data_dir.parent.mkdir()
            first.append(start_once(data_dir))
            again.append(start_once(data_dir))
            for kind, start in (("first start", first[-1]), ("restart    ", again[-1])):
                print(
                    f"run {run + 1} {kind}: health {start.health:.2f} s, REST {start.rest:.2f} s,"
                    f" GraphQL {start.graphql:.2f} s, logged {start.logged:.2f} s,"
                    f" RSS {start.rss:.0f} MiB"
                )
    for kind, starts in (("first start", first), ("restart", again)):

        def median(values: list[float]) -> float:
            return statistics.median(values)

        print(
            f"median {kind:<11}: health {median([s.health for s in starts]):.2f} s, "
            f"REST {median([s.rest for s in starts]):.2f} s, "
            f"GraphQL {median([s.graphql for s in starts]):.2f} s, "
            f"logged {median([s.logged for s in starts]):.2f} s, "
            f"RSS idle {median([s.rss for s in starts]):.0f} MiB"
        )


if __name__ == "__main__":
    main()
