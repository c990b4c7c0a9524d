"""``mailcue serve`` on a machine that is not as expected: one line, a non-zero exit, no hang.

Each case runs the real command as a child process and checks what a user
sees: the last stderr line names the setting to change and the cause, the
exit status is 2, no traceback is printed, and the process is gone within a
few seconds instead of hanging on a leftover database thread.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from processes import PORT_VARIABLES, cli_env, closed_port, mailcue

# Generous for a loaded 2-core CI machine; a hang is caught by the subprocess timeout.
EXIT_WITHIN = 20.0


def serve(env: dict[str, str], cwd: Path, prefix: Sequence[str] = ()) -> tuple[int, str, float]:
    """Run ``mailcue serve`` to its end: (exit status, stderr, seconds)."""
    started = time.monotonic()
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "mailcue_server.cli", "serve"],
        env=env,
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=EXIT_WITHIN + 10,
        check=False,
    )
    return result.returncode, result.stderr, time.monotonic() - started


def assert_one_line_failure(outcome: tuple[int, str, float], line: str) -> None:
    code, stderr, seconds = outcome
    assert code == 2, stderr
    assert stderr.rstrip().splitlines()[-1] == f"mailcue: error: {line}", stderr
    assert "Traceback" not in stderr
    assert seconds < EXIT_WITHIN, f"took {seconds:.1f} s:\n{stderr}"


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir that has seen one start-up, as after a user's first `mailcue serve`."""
    data_dir = tmp_path_factory.mktemp("migrated") / "data"
    cwd = data_dir.parent
    result = mailcue("migrate", env=cli_env(data_dir), cwd=cwd)
    assert result.returncode == 0, result.stderr
    return data_dir


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port some other program is listening on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.mark.parametrize("variable", PORT_VARIABLES)
def test_a_port_in_use_names_its_variable(
    migrated: Path, tmp_path: Path, busy_port: int, variable: str
) -> None:
    env = cli_env(migrated, **{variable: str(busy_port)})

    outcome = serve(env, tmp_path)

    assert_one_line_failure(outcome, f"{variable}={busy_port}: address already in use")


def test_lmtp_port_in_use_names_its_variable(
    migrated: Path, tmp_path: Path, busy_port: int
) -> None:
    env = cli_env(migrated, MAILCUE_LMTP_PORT=str(busy_port))

    outcome = serve(env, tmp_path)

    assert_one_line_failure(outcome, f"MAILCUE_LMTP_PORT={busy_port}: address already in use")


def test_a_bind_address_this_machine_does_not_have(migrated: Path, tmp_path: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: never assigned to a real interface.
    outcome = serve(cli_env(migrated, MAILCUE_BIND="192.0.2.1"), tmp_path)

    assert_one_line_failure(
        outcome, "MAILCUE_BIND=192.0.2.1: cannot assign requested address (smtp could not listen)"
    )


def test_the_data_dir_is_a_file(tmp_path: Path) -> None:
    where = tmp_path / "data"
    where.write_text("not a directory")

    outcome = serve(cli_env(where), tmp_path)

    assert_one_line_failure(outcome, f"MAILCUE_DATA_DIR={where}: exists and is not a directory")
    assert where.read_text() == "not a directory"


def test_the_data_dir_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    where = blocker / "data"

    outcome = serve(cli_env(where), tmp_path)

    assert_one_line_failure(
        outcome, f"MAILCUE_DATA_DIR={where}: cannot create it: not a directory"
    )


def as_unprivileged_user() -> Sequence[str]:
    """A command prefix under which file permissions bind us as they bind a normal user.

    Root ignores permission bits; in a new user namespace root is mapped to
    ``nobody`` and meets them like anyone else.
    """
    if os.geteuid() != 0:
        return ()
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--user", "true"], check=False).returncode:
        pytest.skip("running as root without a working `unshare --user` to drop privileges")
    return (unshare, "--user")


def test_a_data_dir_the_user_may_not_write(tmp_path: Path) -> None:
    where = tmp_path / "data"
    where.mkdir()
    where.chmod(0o555)
    prefix = as_unprivileged_user()

    outcome = serve(cli_env(where), tmp_path, prefix)

    assert_one_line_failure(
        outcome, f"MAILCUE_DATA_DIR={where}: cannot write in it: permission denied"
    )


def test_a_database_file_the_user_may_not_write(migrated: Path, tmp_path: Path) -> None:
    where = tmp_path / "data"
    shutil.copytree(migrated, where)
    (where / "mailcue.db").chmod(0o444)
    prefix = as_unprivileged_user()

    outcome = serve(cli_env(where), tmp_path, prefix)

    assert_one_line_failure(
        outcome, f"MAILCUE_DATA_DIR={where}: cannot write mailcue.db: permission denied"
    )


def test_a_postgres_that_does_not_answer_hides_the_password(tmp_path: Path) -> None:
    closed = closed_port()
    url = f"postgres://mailcue:s3cret@127.0.0.1:{closed}/mailcue"

    outcome = serve(cli_env(tmp_path / "data", MAILCUE_DATABASE_URL=url), tmp_path)

    assert_one_line_failure(
        outcome,
        f"MAILCUE_DATABASE_URL=postgres://mailcue:***@127.0.0.1:{closed}/mailcue: "
        "connection refused",
    )
    assert "s3cret" not in outcome[1]


def test_a_redis_that_does_not_answer(migrated: Path, tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"

    outcome = serve(cli_env(migrated, MAILCUE_REDIS_URL=url), tmp_path)

    assert_one_line_failure(outcome, f"MAILCUE_REDIS_URL={url}: connection refused")
