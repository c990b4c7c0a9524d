"""The ``mailcue`` command: serve, migrate, create-admin, create-mailbox, set-password, and
migration upkeep."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import logging.handlers
import os
import queue
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mailcue_server import __version__
from mailcue_server.config import Settings, load_settings
from mailcue_server.errors import ConfigError, MailcueError
from mailcue_server.start_failures import prepare_data_dir, reason

log = logging.getLogger("mailcue_server")


def _setup_logging(level: str) -> Callable[[], None]:
    """Log to stderr from a thread of its own; returns what writes the rest and stops it.

    The event loop's thread only makes each record and queues it: formatting
    the time and a write that may block on a slow reader of stderr happen on
    the listener's thread, never in the middle of an SMTP transaction.
    """
    # Where a call came from is never shown: skip the stack walk every record costs.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    writer = logging.StreamHandler(sys.stderr)
    writer.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    records: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    root = logging.getLogger()
    root.setLevel(level.upper())
    root.addHandler(logging.handlers.QueueHandler(records))
    # aiosmtpd logs every SMTP command at INFO.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    listener = logging.handlers.QueueListener(records, writer)
    listener.start()
    stopped = False

    def flush_and_stop() -> None:
        nonlocal stopped
        if not stopped:
            stopped = True
            listener.stop()

    return flush_and_stop


async def _serve(settings: Settings) -> None:
    from mailcue_server.app import MailcueServer  # heavy imports only for serve

    server = MailcueServer(settings)
    # Handlers first: a SIGTERM while the node starts (a test suite stopping it as
    # soon as HTTP listens) must stop it cleanly once started, not kill it.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await server.start()
    except (ConfigError, MailcueError):
        raise
    except Exception as exc:
        log.debug("start-up failed", exc_info=True)
        raise ConfigError(
            f"start-up failed: {reason(exc)} (MAILCUE_LOG_LEVEL=DEBUG shows where)"
        ) from exc
    log.info(
        "MailCue %s ready %.2f s after the process started (mode %s)",
        __version__,
        _seconds_since_process_start(),
        settings.mode.value,
    )
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        await server.stop()


# When this module was first imported: the fallback for the process's start time.
_IMPORTED_AT = time.monotonic()


def _seconds_since_process_start() -> float:
    """Seconds since the kernel started this process (interpreter start-up and every import
    included); where /proc is missing, since this module was imported."""
    try:
        stat = Path("/proc/self/stat").read_text()
        started_ticks = int(stat.rsplit(")", 1)[1].split()[19])  # field 22, starttime
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - started_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.monotonic() - _IMPORTED_AT


def _serve_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (``uvicorn[standard]`` brings it), else asyncio's own loop.

    It costs the SMTP hot path about 11 % fewer instructions per message
    (``scripts/bench_smtp.py``, measured with callgrind); everything runs on either.
    """
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


async def _migrate(settings: Settings) -> None:
    from mailcue_server.store.db import Database

    prepare_data_dir(settings.data_dir)
    db = Database(settings.effective_database_url)
    await db.open()
    try:
        applied = await db.migrate()
        print(
            f"applied {len(applied)} migration(s)" + (": " + ", ".join(applied) if applied else "")
        )
    finally:
        await db.close()


async def _create_admin(settings: Settings, username: str, email: str, password: str) -> None:
    from mailcue_server.resolvers.users import check_new_password
    from mailcue_server.store import users
    from mailcue_server.store.credentials import hash_password
    from mailcue_server.store.db import Database

    email = email or f"{username}@{settings.domain}"
    check_new_password(password, username, email)
    prepare_data_dir(settings.data_dir)
    db = Database(settings.effective_database_url)
    await db.open()
    try:
        await db.migrate()
        await users.create(
            username=username,
            email=email,
            password_hash=await hash_password(password),
            is_admin=True,
            max_mailboxes=1000,
        )
        print(f"created admin user {username!r}")
    finally:
        await db.close()


async def _create_mailbox(settings: Settings, address: str, password: str) -> None:
    from mailcue_server.events.memory import MemoryBus
    from mailcue_server.resolvers.users import check_new_password
    from mailcue_server.store import mailboxes
    from mailcue_server.store.db import Database

    if password:  # none: the mailbox opens over no protocol until one is set
        check_new_password(password, address)
    prepare_data_dir(settings.data_dir)
    db = Database(settings.effective_database_url)
    await db.open()
    try:
        await db.migrate()
        bus = MemoryBus()  # no server runs in this process: nobody listens
        mailbox = await mailboxes.create_mailbox(address, bus=bus, password=password or None)
        await bus.close()
        print(f"created mailbox {mailbox.address!r}")
    finally:
        await db.close()


async def _set_password(settings: Settings, address: str, password: str) -> None:
    from mailcue_server.resolvers.users import check_new_password
    from mailcue_server.store import mailboxes
    from mailcue_server.store.db import Database

    check_new_password(password, address)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.effective_database_url)
    await db.open()
    try:
        await db.migrate()
        mailbox = await mailboxes.get_mailbox(address)
        await mailboxes.set_password(mailbox.address, password)
        print(f"set the password of mailbox {mailbox.address!r}")
    finally:
        await db.close()


async def _makemigrations(settings: Settings, check: bool) -> int:
    """Write (or with ``check``, only report) migrations for model changes."""
    from mailcue_server.store.db import Database

    db = Database("sqlite://:memory:")
    await db.open()
    try:
        pending = await db.pending_model_changes()
        if check:
            if pending:
                print(
                    "models and migrations disagree; run `mailcue makemigrations`: "
                    + ", ".join(pending)
                )
                return 1
            print("migrations match the models")
            return 0
        for writer in await db.migration_writers():
            print(f"wrote {writer.write()}")
        return 0
    finally:
        await db.close()


def _local_url(settings: Settings) -> str:
    """Where this machine's own server answers HTTP (a wildcard bind means loopback)."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(  # noqa: S104
        settings.bind, settings.bind
    )
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.http_port}"


def _healthcheck(url: str, timeout: float) -> int:
    """0 when ``/api/v1/health`` says healthy, else 1 with the reason on one line."""
    import json
    import urllib.error
    import urllib.request

    target = url.rstrip("/") + "/api/v1/health"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:  # noqa: S310
            status = json.loads(response.read()).get("status")
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {target}: {reason(exc)}", file=sys.stderr)
        return 1
    if status != "healthy":
        print(f"unhealthy: {target}: status {status!r}", file=sys.stderr)
        return 1
    print(f"healthy: {target}")
    return 0


def _exit_now_if_threads_linger(status: int) -> None:
    """Exit even if a library left a worker thread behind after a failed start.

    The server stops what it started when start-up fails, but a driver's
    thread that outlives it would keep the process alive, and a failed
    ``mailcue serve`` must end.
    """
    lingering = [t for t in threading.enumerate() if t is not threading.main_thread()]
    if any(not thread.daemon for thread in lingering):
        sys.stderr.flush()
        os._exit(status)


# The settings common enough to be flags of `serve` too; a flag wins over MAILCUE_*.
SERVE_FLAGS = (
    ("--data-dir", "data_dir", "where the database, secret and certificates live"),
    ("--bind", "bind", "listen address of every listener"),
    ("--http-port", "http_port", "REST, GraphQL and the web UI"),
    ("--smtp-port", "smtp_port", "inbound SMTP"),
    ("--mode", "mode", "test (catch-all) or production"),
)


def _settings_help() -> str:
    """Every MAILCUE_* variable with its default and meaning, for `serve --help`."""
    lines = ["settings (environment variables, or a .env file in the working directory):"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "" if default in ("", None) else f" (default: {default})"
        lines.append(f"  MAILCUE_{name.upper()}{shown}")
        if field.description:
            lines.extend(
                textwrap.wrap(
                    field.description, 78, initial_indent=" " * 6, subsequent_indent=" " * 6
                )
            )
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailcue", description="MailCue email testing server")
    parser.add_argument("--version", action="version", version=f"mailcue {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser(
        "serve",
        help="run every server in one process",
        description="Run HTTP, SMTP, IMAP, POP3 and the workers in one process.",
        epilog=_settings_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for flag, field, text in SERVE_FLAGS:
        serve.add_argument(
            flag, dest=field, metavar="VALUE", help=f"{text} (MAILCUE_{field.upper()})"
        )
    health = sub.add_parser(
        "healthcheck",
        help="exit 0 when the local server answers healthy (for container orchestrators)",
    )
    health.add_argument("--url", help="base URL; default: this machine's MAILCUE_HTTP_PORT")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    sub.add_parser("migrate", help="apply pending database migrations")
    admin = sub.add_parser("create-admin", help="create another admin user")
    admin.add_argument("--username", required=True)
    admin.add_argument("--email", default="")
    admin.add_argument(
        "--password", help="default: $MAILCUE_NEW_ADMIN_PASSWORD or an interactive prompt"
    )
    box = sub.add_parser("create-mailbox", help="create a mailbox (before or without serve)")
    box.add_argument("--address", required=True)
    box.add_argument("--password", default="", help="for IMAP, POP3 and SMTP AUTH")
    secret = sub.add_parser(
        "set-password", help="set a mailbox's password for IMAP, POP3 and SMTP AUTH"
    )
    secret.add_argument("--address", required=True)
    secret.add_argument(
        "--password", help="default: $MAILCUE_NEW_MAILBOX_PASSWORD or an interactive prompt"
    )
    make = sub.add_parser("makemigrations", help="write migrations for model changes (dev)")
    make.add_argument("--check", action="store_true", help="fail if a migration is missing")
    return parser


def _password(given: str | None, variable: str, prompt: str) -> str:
    """``given`` (``--password``, else ``variable``), else asked on the terminal (if stdin is one).

    Raises:
        ConfigError: None of them gave one (no terminal to ask on).
    """
    if given:
        return given
    missing = f"no password: give --password, set {variable} or run it in a terminal"
    if not sys.stdin.isatty():  # a script or CI: fail rather than wait on /dev/tty
        raise ConfigError(missing)
    try:
        return getpass.getpass(prompt)
    except EOFError:
        raise ConfigError(missing) from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    flush_logs: Callable[[], None] = lambda: None  # noqa: E731 - until logging is set up
    try:
        flags = {field: getattr(args, field, None) for _, field, _ in SERVE_FLAGS}
        settings = load_settings(**{k: v for k, v in flags.items() if v is not None})
        flush_logs = _setup_logging(settings.log_level)
        if args.command == "serve":
            with asyncio.Runner(loop_factory=_serve_loop_factory()) as runner:
                runner.run(_serve(settings))
        elif args.command == "healthcheck":
            return _healthcheck(args.url or _local_url(settings), args.timeout)
        elif args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "create-admin":
            password = _password(
                args.password or os.environ.get("MAILCUE_NEW_ADMIN_PASSWORD"),
                "MAILCUE_NEW_ADMIN_PASSWORD",
                "Password for the new admin: ",
            )
            asyncio.run(_create_admin(settings, args.username, args.email, password))
        elif args.command == "create-mailbox":
            asyncio.run(_create_mailbox(settings, args.address, args.password))
        elif args.command == "set-password":
            password = _password(
                args.password or os.environ.get("MAILCUE_NEW_MAILBOX_PASSWORD"),
                "MAILCUE_NEW_MAILBOX_PASSWORD",
                f"New password for {args.address}: ",
            )
            asyncio.run(_set_password(settings, args.address, password))
        elif args.command == "makemigrations":
            return asyncio.run(_makemigrations(settings, args.check))
    except (ConfigError, MailcueError) as exc:
        flush_logs()  # the log lines before it, then the error as the last line
        print(f"mailcue: error: {exc.message}", file=sys.stderr)
        _exit_now_if_threads_linger(2)
        return 2
    except KeyboardInterrupt:
        return 130
    finally:
        flush_logs()
    return 0


if __name__ == "__main__":
    sys.exit(main())
