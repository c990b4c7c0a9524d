"""Settings: documented defaults, MAILCUE_* variables, .env, one-line errors, secrets, DB URL.

Every test runs in an empty working directory with no inherited ``MAILCUE_*``
variable, so neither the developer's shell nor a ``.env`` in the repository
leaks in. Input is given the way users give it: environment variables and a
``.env`` file.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from contextlib import closing
from pathlib import Path

import pytest

from mailcue_server.config import (
    DEFAULT_ADMIN_PASSWORD,
    MIN_PRODUCTION_SECRET_LENGTH,
    Mode,
    load_settings,
    resolve_secret_key,
)
from mailcue_server.errors import ConfigError
from mailcue_server.store.db import Database, normalise_url

GOOD_SECRET = "s" * MIN_PRODUCTION_SECRET_LENGTH


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No inherited MAILCUE_* variable and an empty working directory (so no .env)."""
    for name in list(os.environ):
        if name.upper().startswith("MAILCUE_"):
            monkeypatch.delenv(name)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    return workdir


def test_defaults_match_the_documentation() -> None:
    settings = load_settings()

    assert settings.mode is Mode.TEST
    assert not settings.is_production
    assert settings.domain == "mailcue.local"
    assert settings.admin_user == "admin"
    assert settings.admin_password == "mailcue"
    assert settings.access_token_expire_minutes == 30
    assert settings.refresh_token_expire_days == 7
    assert settings.bind == "127.0.0.1"
    ports = {
        "http": settings.http_port,
        "smtp": settings.smtp_port,
        "submission": settings.submission_port,
        "smtps": settings.smtps_port,
        "imap": settings.imap_port,
        "imaps": settings.imaps_port,
        "pop3": settings.pop3_port,
        "pop3s": settings.pop3s_port,
    }
    assert ports == {
        "http": 8088,
        "smtp": 1025,
        "submission": 1587,
        "smtps": 1465,
        "imap": 1143,
        "imaps": 1993,
        "pop3": 1110,
        "pop3s": 1995,
    }
    assert settings.lmtp_port is None
    caps = (settings.max_connections, settings.max_connections_per_client)
    assert caps == (1000, 200)
    timeouts = (
        settings.prelogin_idle_timeout,
        settings.smtp_idle_timeout,
        settings.http_keepalive_timeout,
        settings.http_header_timeout,
    )
    assert timeouts == (60, 300, 5, 20)


def test_mailcue_environment_variables_are_read(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MAILCUE_DOMAIN", "example.test")
    monkeypatch.setenv("MAILCUE_BIND", "0.0.0.0")  # noqa: S104 - a value, nothing binds
    monkeypatch.setenv("MAILCUE_HTTP_PORT", "9000")
    monkeypatch.setenv("MAILCUE_LMTP_PORT", "2424")
    monkeypatch.setenv("MAILCUE_ACCESS_TOKEN_EXPIRE_MINUTES", "5")
    monkeypatch.setenv("MAILCUE_DATA_DIR", str(tmp_path / "data"))

    settings = load_settings()

    assert settings.domain == "example.test"
    assert settings.bind == "0.0.0.0"  # noqa: S104
    assert settings.http_port == 9000
    assert settings.lmtp_port == 2424
    assert settings.access_token_expire_minutes == 5
    assert settings.data_dir == tmp_path / "data"
    assert settings.effective_admin_email == "admin@example.test"


def test_empty_lmtp_port_means_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILCUE_LMTP_PORT", "")
    assert load_settings().lmtp_port is None


def test_dotenv_in_the_working_directory_is_read(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    (clean_environment / ".env").write_text(
        "MAILCUE_DOMAIN=dotenv.test\nMAILCUE_SMTP_PORT=2525\n", encoding="utf-8"
    )
    monkeypatch.setenv("MAILCUE_SMTP_PORT", "2626")

    settings = load_settings()

    assert settings.domain == "dotenv.test"
    assert settings.smtp_port == 2626  # a real environment variable beats .env


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MAILCUE_HTTP_PORT", "abc"),
        ("MAILCUE_HTTP_PORT", "70000"),
        ("MAILCUE_MODE", "prod"),
        ("MAILCUE_ACCESS_TOKEN_EXPIRE_MINUTES", "0"),
        ("MAILCUE_MAX_CONNECTIONS", "0"),
        ("MAILCUE_MAX_CONNECTIONS_PER_CLIENT", "many"),
        ("MAILCUE_PRELOGIN_IDLE_TIMEOUT", "-1"),
        ("MAILCUE_HTTP_KEEPALIVE_TIMEOUT", "1.5"),
    ],
)
def test_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    message = caught.value.message
    assert message.startswith(f"{variable}:"), message
    assert "\n" not in message
    assert str(caught.value) == message


def test_bad_value_in_dotenv_names_the_variable(clean_environment: Path) -> None:
    (clean_environment / ".env").write_text("MAILCUE_IMAP_PORT=-1\n", encoding="utf-8")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert caught.value.message.startswith("MAILCUE_IMAP_PORT:")
    assert "\n" not in caught.value.message


def test_production_refuses_the_default_admin_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILCUE_MODE", "production")
    monkeypatch.setenv("MAILCUE_SECRET_KEY", GOOD_SECRET)
    assert DEFAULT_ADMIN_PASSWORD == "mailcue"

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert caught.value.message.startswith("MAILCUE_ADMIN_PASSWORD:")
    assert "\n" not in caught.value.message


@pytest.mark.parametrize("secret", ["", "s" * (MIN_PRODUCTION_SECRET_LENGTH - 1)])
def test_production_refuses_a_short_secret(monkeypatch: pytest.MonkeyPatch, secret: str) -> None:
    monkeypatch.setenv("MAILCUE_MODE", "production")
    monkeypatch.setenv("MAILCUE_ADMIN_PASSWORD", "a-real-admin-password")
    monkeypatch.setenv("MAILCUE_SECRET_KEY", secret)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert caught.value.message.startswith("MAILCUE_SECRET_KEY:")
    assert str(MIN_PRODUCTION_SECRET_LENGTH) in caught.value.message


def test_production_accepts_own_password_and_long_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILCUE_MODE", "production")
    monkeypatch.setenv("MAILCUE_ADMIN_PASSWORD", "a-real-admin-password")
    monkeypatch.setenv("MAILCUE_SECRET_KEY", GOOD_SECRET)

    settings = load_settings()

    assert settings.is_production
    assert resolve_secret_key(settings) == GOOD_SECRET


def test_secret_is_generated_once_and_persisted_private(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("MAILCUE_DATA_DIR", str(data_dir))

    settings = load_settings()

    first = resolve_secret_key(settings)

    key_file = data_dir / "secret_key"
    assert len(first) >= MIN_PRODUCTION_SECRET_LENGTH
    assert key_file.read_text(encoding="utf-8").strip() == first
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # The next call, and a restart (fresh settings), reuse it.
    assert resolve_secret_key(settings) == first
    assert resolve_secret_key(load_settings()) == first


def test_explicit_secret_wins_over_the_persisted_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("MAILCUE_DATA_DIR", str(data_dir))
    generated = resolve_secret_key(load_settings())

    monkeypatch.setenv("MAILCUE_SECRET_KEY", GOOD_SECRET)

    assert resolve_secret_key(load_settings()) == GOOD_SECRET
    assert (data_dir / "secret_key").read_text(encoding="utf-8").strip() == generated


def test_empty_persisted_secret_is_never_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "secret_key").touch(mode=0o600)
    monkeypatch.setenv("MAILCUE_DATA_DIR", str(data_dir))

    assert len(resolve_secret_key(load_settings())) >= MIN_PRODUCTION_SECRET_LENGTH


async def test_default_database_is_a_wal_sqlite_file_in_the_data_dir(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    monkeypatch.setenv("MAILCUE_DATA_DIR", str(data_dir))
    settings = load_settings()

    url = settings.effective_database_url

    db_file = (data_dir / "mailcue.db").resolve()
    assert url.startswith(f"sqlite://{db_file}?")
    assert "journal_mode=WAL" in url
    db = Database(url)
    assert db.engine == "sqlite"
    await db.open()
    try:
        await db.migrate()
    finally:
        await db.close()
    # WAL is a property of the file itself, so a plain sqlite3 connection sees it.
    with closing(sqlite3.connect(db_file)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_explicit_database_url_is_used_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILCUE_DATABASE_URL", "postgresql://mc:pw@db:5432/mailcue")

    settings = load_settings()

    assert settings.effective_database_url == "postgresql://mc:pw@db:5432/mailcue"
    db = Database(settings.effective_database_url)
    assert db.url == "postgres://mc:pw@db:5432/mailcue"
    assert db.engine == "postgresql"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u:p@h:5432/d", "postgres://u:p@h:5432/d"),
        ("postgresql+asyncpg://u:p@h/d", "postgres://u:p@h/d"),
        ("postgres+asyncpg://u@h/d", "postgres://u@h/d"),
        ("postgres://u@h/d", "postgres://u@h/d"),
        ("sqlite:///tmp/x.db?journal_mode=WAL", "sqlite:///tmp/x.db?journal_mode=WAL"),
        ("sqlite://:memory:", "sqlite://:memory:"),
    ],
)
def test_normalise_url(given: str, expected: str) -> None:
    assert normalise_url(given) == expected
