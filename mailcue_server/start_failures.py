"""What can stop a node from starting, said in one line that names the setting to change.

``mailcue serve`` must never hang or print a traceback when the machine is
not as expected (a port in use, a data dir it cannot write, a database that
does not answer): each stage of start-up runs under :func:`blame`, which
turns whatever the stage raises into a :class:`ConfigError` such as
``MAILCUE_SMTP_PORT=1025: address already in use``.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mailcue_server.errors import ConfigError, ListenerUnavailable

DATA_DIR = "MAILCUE_DATA_DIR"

# Listener name (as logged: "listening: smtp ...") -> the variable that sets its port.
PORT_SETTINGS = {
    "http": "MAILCUE_HTTP_PORT",
    "smtp": "MAILCUE_SMTP_PORT",
    "submission": "MAILCUE_SUBMISSION_PORT",
    "smtps": "MAILCUE_SMTPS_PORT",
    "lmtp": "MAILCUE_LMTP_PORT",
    "imap": "MAILCUE_IMAP_PORT",
    "imaps": "MAILCUE_IMAPS_PORT",
    "pop3": "MAILCUE_POP3_PORT",
    "pop3s": "MAILCUE_POP3S_PORT",
}

# Files the node writes directly in the data dir (SQLite adds -wal and -shm beside its file).
_OWN_FILES = ("secret_key", "mailcue.db", "mailcue.db-wal", "mailcue.db-shm")


def reason(error: BaseException) -> str:
    """The cause in a few words: the OS's wording where a system error lies beneath
    (drivers wrap them in their own exceptions), else the error's first line."""
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno:
            text = os.strerror(cause.errno)
            return text[0].lower() + text[1:]
        cause = cause.__cause__ or cause.__context__
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


def hide_password(url: str) -> str:
    """``scheme://user:secret@host`` -> ``scheme://user:***@host``, for error lines."""
    return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", url)


@contextmanager
def blame(setting: str, value: object) -> Iterator[None]:
    """Run a start-up stage; whatever it raises becomes ``SETTING=value: cause``."""
    try:
        yield
    except ConfigError:
        raise
    except ListenerUnavailable as exc:
        raise listener_failure(exc.listener, exc.host, exc.port, exc.error) from None
    except Exception as exc:
        where = f"{exc.filename}: " if isinstance(exc, OSError) and exc.filename else ""
        raise ConfigError(f"{setting}={value}: {where}{reason(exc)}") from exc


def listener_failure(listener: str, host: str, port: int, error: OSError) -> ConfigError:
    """Blame the port for what the port decides, and the bind address for the rest."""
    setting = PORT_SETTINGS.get(listener, "MAILCUE_BIND")
    if error.errno == errno.EADDRINUSE:
        return ConfigError(f"{setting}={port}: address already in use")
    if error.errno == errno.EACCES:
        return ConfigError(
            f"{setting}={port}: permission denied "
            "(ports below 1024 need root or CAP_NET_BIND_SERVICE)"
        )
    return ConfigError(f"MAILCUE_BIND={host}: {reason(error)} ({listener} could not listen)")


def prepare_data_dir(path: Path) -> None:
    """Create the data dir if needed and prove this process can write there.

    SQLite on a directory or file it may read but not write fails only at
    the first write, deep inside start-up; checking first gives the one line
    that says what to change.
    """
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{DATA_DIR}={path}: exists and is not a directory")
    try:
        # Owner only: the data dir holds the mail, the secret key and the CA's private key.
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{DATA_DIR}={path}: cannot create it: {reason(exc)}") from None
    probe = path / f".write-check-{os.getpid()}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{DATA_DIR}={path}: cannot write in it: {reason(exc)}") from None
    for name in _OWN_FILES:
        own = path / name
        if own.exists() and not os.access(own, os.R_OK | os.W_OK):
            raise ConfigError(f"{DATA_DIR}={path}: cannot write {name}: permission denied")
