"""The ``mailcue`` command, run as a real child process like a user runs it.

Each test gets an empty working directory (no ``.env``), its own data dir, no
inherited ``MAILCUE_*`` variable and port 0 for every listener. Waiting is
always for a line or an exit, with a deadline; nothing sleeps.
"""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import httpx
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
OPS_PASSWORD = "ops-password"  # 12 characters


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "cwd"
    path.mkdir()
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def cli_env(data_dir: Path, **variables: str) -> dict[str, str]:
    """The parent's environment minus MAILCUE_*, plus the repo, the data dir and port 0."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MAILCUE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["MAILCUE_DATA_DIR"] = str(data_dir)
    env.update(dict.fromkeys(PORT_VARIABLES, "0"))
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


def test_serve_answers_health_and_stops_cleanly_on_sigterm(
    workdir: Path, data_dir: Path, record_property: Callable[[str, object], None]
) -> None:
    with ServeProcess(cli_env(data_dir), workdir) as serve:
        url = serve.wait_listening()
        response = httpx.get(f"{url}/api/v1/health", timeout=10)
        seconds_to_healthy = time.monotonic() - serve.started_at
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "healthy"

        code = serve.terminate()

    # Recorded, never asserted: timing on a shared machine is not a pass/fail signal.
    record_property("serve_seconds_to_healthy", round(seconds_to_healthy, 3))
    print(f"mailcue serve healthy after {seconds_to_healthy:.2f} s")
    assert code == 0, serve.output
    assert "shutting down" in serve.output
    assert "Traceback" not in serve.output


@pytest.mark.parametrize("value", ["abc", "70000"])
def test_bad_value_is_one_line_and_exit_2(workdir: Path, data_dir: Path, value: str) -> None:
    result = mailcue("serve", env=cli_env(data_dir, MAILCUE_HTTP_PORT=value), cwd=workdir)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "MAILCUE_HTTP_PORT" in lines[0]
    assert value in lines[0]
    assert not data_dir.exists()  # refused before touching anything


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({}, "MAILCUE_ADMIN_PASSWORD"),
        ({"MAILCUE_ADMIN_PASSWORD": "a-real-admin-password"}, "MAILCUE_SECRET_KEY"),
    ],
)
def test_production_refuses_unsafe_defaults(
    workdir: Path, data_dir: Path, variables: dict[str, str], named: str
) -> None:
    env = cli_env(data_dir, MAILCUE_MODE="production", **variables)

    result = mailcue("serve", env=env, cwd=workdir)

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert named in lines[0]
    assert "production" in lines[0]


def test_migrate_applies_once(workdir: Path, data_dir: Path) -> None:
    env = cli_env(data_dir)

    first = mailcue("migrate", env=env, cwd=workdir)
    second = mailcue("migrate", env=env, cwd=workdir)

    assert first.returncode == 0, first.stderr
    applied = re.search(r"applied (\d+) migration", first.stdout)
    assert applied is not None, first.stdout
    assert int(applied.group(1)) >= 1
    assert (data_dir / "mailcue.db").is_file()
    assert second.returncode == 0, second.stderr
    assert re.search(r"applied 0 migration", second.stdout), second.stdout


def test_create_admin_then_log_in_on_a_started_server(workdir: Path, data_dir: Path) -> None:
    env = cli_env(data_dir)

    too_short = mailcue(
        "create-admin", "--username", "weak", "--password", "short", env=env, cwd=workdir
    )
    created = mailcue(
        "create-admin", "--username", "ops", "--password", OPS_PASSWORD, env=env, cwd=workdir
    )
    from_variable = mailcue(
        "create-admin",
        "--username",
        "ops2",
        env={**env, "MAILCUE_NEW_ADMIN_PASSWORD": "ops2-password"},
        cwd=workdir,
    )

    assert len(OPS_PASSWORD) == 12
    assert too_short.returncode == 2, too_short.stderr
    assert "Traceback" not in too_short.stderr
    assert "Password" in too_short.stderr
    assert created.returncode == 0, created.stderr
    assert "ops" in created.stdout
    assert from_variable.returncode == 0, from_variable.stderr

    with ServeProcess(env, workdir) as serve:
        url = serve.wait_listening()
        with httpx.Client(base_url=url, timeout=10) as http:
            ops = http.post(
                "/api/v1/auth/login", json={"username": "ops", "password": OPS_PASSWORD}
            )
            ops2 = http.post(
                "/api/v1/auth/login", json={"username": "ops2", "password": "ops2-password"}
            )
            weak = http.post("/api/v1/auth/login", json={"username": "weak", "password": "short"})
            assert ops.status_code == 200, ops.text
            me = http.get(
                "/api/v1/auth/me",
                headers={"Authorization": f"Bearer {ops.json()['access_token']}"},
            )
        code = serve.terminate()

    assert ops.json()["user"]["username"] == "ops"
    assert me.status_code == 200, me.text
    assert me.json()["is_admin"] is True
    assert ops2.status_code == 200, ops2.text
    assert weak.status_code == 401, weak.text
    assert code == 0, serve.output


def test_makemigrations_check_agrees_with_committed_migrations(
    workdir: Path, data_dir: Path
) -> None:
    result = mailcue("makemigrations", "--check", env=cli_env(data_dir), cwd=workdir)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "match" in result.stdout
