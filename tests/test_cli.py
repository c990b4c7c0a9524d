"""The ``mailcue`` command, run as a real child process like a user runs it.

Each test gets an empty working directory (no ``.env``), its own data dir, no
inherited ``MAILCUE_*`` variable and port 0 for every listener. Waiting is
always for a line or an exit, with a deadline; nothing sleeps.
"""

from __future__ import annotations

import poplib
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from processes import ServeProcess, cli_env, mailcue

OPS_PASSWORD = "ops-password"  # 12 characters


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "cwd"
    path.mkdir()
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


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


def test_the_data_dir_and_database_are_private(workdir: Path, data_dir: Path) -> None:
    result = mailcue("migrate", env=cli_env(data_dir), cwd=workdir)
    assert result.returncode == 0, result.stderr

    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((data_dir / "mailcue.db").stat().st_mode) == 0o600
    # A database made world-readable by an older version is tightened at the next start.
    (data_dir / "mailcue.db").chmod(0o644)
    with ServeProcess(cli_env(data_dir), workdir) as serve:
        serve.wait_listening()
        modes = {
            path.name: stat.S_IMODE(path.stat().st_mode) for path in data_dir.glob("mailcue.db*")
        }
        assert serve.terminate() == 0
    assert modes == {"mailcue.db": 0o600, "mailcue.db-wal": 0o600, "mailcue.db-shm": 0o600}


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


def test_set_password_gives_a_mailbox_its_password_for_pop3(workdir: Path, data_dir: Path) -> None:
    env = cli_env(data_dir)
    address = "first-mail@mailcue.local"
    created = mailcue("create-mailbox", "--address", address, env=env, cwd=workdir)

    unknown = mailcue(
        "set-password",
        "--address",
        "nobody@mailcue.local",
        "--password",
        "long-enough-1",
        env=env,
        cwd=workdir,
    )
    too_short = mailcue(
        "set-password", "--address", address, "--password", "short", env=env, cwd=workdir
    )
    no_password = mailcue("set-password", "--address", address, env=env, cwd=workdir)
    from_flag = mailcue(
        "set-password",
        "--address",
        address,
        "--password",
        "from-the-flag-1",
        env=env,
        cwd=workdir,
    )
    from_variable = mailcue(
        "set-password",
        "--address",
        address.upper(),
        env={**env, "MAILCUE_NEW_MAILBOX_PASSWORD": "from-the-variable-1"},
        cwd=workdir,
    )

    assert created.returncode == 0, created.stderr
    for failed, named in (
        (unknown, "nobody@mailcue.local"),
        (too_short, "Password"),
        (no_password, "MAILCUE_NEW_MAILBOX_PASSWORD"),
    ):
        assert failed.returncode == 2, failed.stderr
        assert "Traceback" not in failed.stderr
        assert named in failed.stderr.splitlines()[-1], failed.stderr
    assert from_flag.returncode == 0, from_flag.stderr
    assert from_variable.returncode == 0, from_variable.stderr
    assert address in from_variable.stdout

    with ServeProcess(env, workdir) as serve:
        serve.wait_listening()
        port = serve.listener_port("pop3")
        client = poplib.POP3("127.0.0.1", port, timeout=10)
        client.user(address)
        with pytest.raises(poplib.error_proto):
            client.pass_("from-the-flag-1")  # replaced by the second call
        client.quit()
        client = poplib.POP3("127.0.0.1", port, timeout=10)
        client.user(address)
        client.pass_("from-the-variable-1")
        assert client.stat() == (0, 0)
        client.quit()
        code = serve.terminate()
    assert code == 0, serve.output
