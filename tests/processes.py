"""Running ``mailcue`` as a real child process, the way a user does.

``ServeProcess`` starts ``mailcue serve`` with port 0 everywhere and reads its
stderr on a thread, so tests wait for log lines with deadlines, never sleeps.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import TracebackType

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
PORT_VARIABLES = (
    "MAILCUE_HTTP_PORT",
    "MAILCUE_SMTP_PORT",
    "MAILCUE_SUBMISSION_PORT",
    "MAILCUE_SMTPS_PORT",
    "MAILCUE_IMAP_PORT",
    "MAILCUE_IMAPS_PORT",
    "MAILCUE_POP3_PORT",
    "MAILCUE_POP3S_PORT",
)
LISTENING_HTTP = re.compile(r"listening: http\s+(http://127\.0\.0\.1:(\d+))\s*$")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
COMMAND_TIMEOUT = 60.0


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli_env(data_dir: Path, **variables: str) -> dict[str, str]:
    """The parent's environment minus MAILCUE_*, plus the repo, the data dir and port 0."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MAILCUE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["MAILCUE_DATA_DIR"] = str(data_dir)
    env.update(dict.fromkeys(PORT_VARIABLES, "0"))
    # No DNS for SPF/DKIM/DMARC of test mail (as in conftest.node_settings).
    env["MAILCUE_INBOUND_AUTH"] = "false"
    env.update(variables)
    return env


def mailcue(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = COMMAND_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailcue_server.cli", *args],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


class ServeProcess:
    """``mailcue serve`` in a child process; its stderr is read line by line by a thread.

    The thread keeps draining the pipe (so the child never blocks on a full
    pipe) and hands lines over through a queue, which lets ``wait_for`` give up
    at a deadline instead of blocking on ``readline``.
    """

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailcue_server.cli", "serve"],
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern: re.Pattern[str], timeout: float) -> re.Match[str]:
        """The first new stderr line matching ``pattern``; fails at the deadline or on exit."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                code = self.proc.wait()
                pytest.fail(f"serve exited ({code}) before {pattern.pattern!r}:\n{self.output}")
            self.lines.append(line)
            if match := pattern.search(line):
                return match
        pytest.fail(f"no {pattern.pattern!r} within {timeout} s:\n{self.output}")

    def wait_listening(self) -> str:
        """The HTTP base URL from the ``listening: http ...`` log line."""
        match = self.wait_for(LISTENING_HTTP, START_TIMEOUT)
        assert int(match.group(2)) != 0
        return match.group(1)

    def terminate(self) -> int:
        """SIGTERM, then the exit code (fails if it takes longer than ``STOP_TIMEOUT``)."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"serve still running {STOP_TIMEOUT} s after SIGTERM:\n{self.output}")
        self._reader.join(timeout=STOP_TIMEOUT)
        while not self._queue.empty():
            line = self._queue.get_nowait()
            if line is not None:
                self.lines.append(line)
        return code

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def listener_port(self, name: str) -> int:
        """The port of a listener from the ``listening: <name> host:port`` lines seen so far."""
        pattern = re.compile(rf"listening: {re.escape(name)}\s+\S+:(\d+)\s*$")
        for line in self.lines:
            if match := pattern.search(line):
                return int(match.group(1))
        pytest.fail(f"no listening line for {name}:\n{self.output}")
