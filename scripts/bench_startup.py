"""Measure ``mailcue serve`` start-up: seconds from exec to a 200 from /api/v1/health, and RSS.

Usage: python scripts/bench_startup.py [--runs 5]

Each run starts a fresh process on free ports with its own data dir (the first
start, which creates the database), and one more restart on that same data dir.
Prints each figure and the medians. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

LISTENING = re.compile(r"listening: http\s+(http://\S+)")


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def start_once(data_dir: Path) -> tuple[float, float]:
    """Start, wait for health, measure, stop. Returns (seconds, RSS MiB)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILCUE_")}
    env |= {"MAILCUE_DATA_DIR": str(data_dir), "MAILCUE_HTTP_PORT": "0"}
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
        url = None
        for line in proc.stderr:
            match = LISTENING.search(line)
            if match:
                url = match.group(1)
                break
        if url is None:
            raise RuntimeError("server exited before listening")
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/v1/health", timeout=2) as response:  # noqa: S310 - loopback URL we just read
                    if response.status == 200:
                        break
            except OSError:
                time.sleep(0.005)
        elapsed = time.perf_counter() - began
        return elapsed, _rss_mib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    first: list[float] = []
    again: list[float] = []
    rss: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.runs):
            data_dir = Path(tmp) / f"run{run}" / "data"
            data_dir.parent.mkdir()
            seconds, mib = start_once(data_dir)
            restart, _ = start_once(data_dir)
            first.append(seconds)
            again.append(restart)
            rss.append(mib)
            print(
                f"run {run + 1}: first start {seconds:.2f} s, restart {restart:.2f} s, "
                f"RSS {mib:.0f} MiB"
            )
    print(f"median first start to healthy: {statistics.median(first):.2f} s")
    print(f"median restart to healthy:     {statistics.median(again):.2f} s")
    print(f"median RSS once up:            {statistics.median(rss):.0f} MiB")


if __name__ == "__main__":
    main()
