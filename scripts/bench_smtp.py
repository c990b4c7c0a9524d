"""Measure SMTP ingest of a real ``mailcue serve`` against a bare aiosmtpd in the same run.

Usage: python scripts/bench_smtp.py [--messages 5000] [--size 2200] [--connections 8]
                                    [--recipients 1,100,1000] [--no-reference]
                                    [--database-url postgres://...] [--profile out.svg]
                                    [--cprofile out.pstats] [--callgrind]

Each case of ``--recipients`` sends the same multipart messages to that many
distinct addresses (message ``n`` to address ``n % R``). Only the first address
exists beforehand (``mailcue create-mailbox``, so it can be watched over
IMAP); in test mode the first mail to each other address creates its mailbox,
as when every test of a suite uses its own address. One recipient is the best
case; a thousand is what test suites do.

Before each case the same client sends the same mail to ``scripts/bare_smtp.py``,
an aiosmtpd on the same event loop that only answers 250: the ceiling of any
server built on aiosmtpd, on this machine, at this moment. The ratio of the
two is the figure to watch; absolute rates move with whatever else the
machine is doing.

For each run: a fresh data dir, then ``mailcue serve`` as a child process on
free ports. Every message is built before the clock starts; each of
``--connections`` aiosmtplib clients connects and greets, then all start
together and send their share over their one connection. Figures:

- accepted msg/s: from the first MAIL to the last 250 after DATA;
- visibility delay: from the last 250 until the first mailbox shows every
  message sent to it (IMAP SELECT INBOX ``EXISTS`` when the node has an IMAP
  listener, else POP3 ``STAT``; the report says which);
- peak RSS: the server's ``VmHWM`` from ``/proc/<pid>/status``;
- CPU seconds that the server and this client process used while sending
  (on a small machine the client competes with the server for the cores).

``--database-url`` runs the node on that database instead of a SQLite file; it
should be an empty database (the counts allow for mail already there) and
serves one case only.
``--profile FILE`` runs ``py-spy record`` on the server while the mail is sent
(``.svg`` writes a flame graph, anything else py-spy's raw collapsed stacks).
``--cprofile FILE`` runs the server under cProfile instead (no extra tool; the
whole process, start-up included, and about twice as slow), for ``pstats``.
``--callgrind`` runs it under valgrind's callgrind and reports the instructions
the server executed while the mail was sent, per message and per thread: slow
(use ``--messages 1000``), but unlike times it barely moves when other
processes share the machine, so it compares two versions of the code.
"""

from __future__ import annotations

import argparse
import asyncio
import imaplib
import os
import poplib
import queue
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import aiosmtplib

REPO_ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "mailcue.local"
ADDRESS = f"bench-0@{DOMAIN}"  # the first recipient: created beforehand, watched over IMAP
PASSWORD = "bench-password-" + secrets.token_hex(4)
PORT_VARIABLES = ("HTTP", "SMTP", "SUBMISSION", "SMTPS", "IMAP", "IMAPS", "POP3", "POP3S")
LISTENING = re.compile(r"listening: (\S+)\s+(\S+):(\d+)\s*$")
START_TIMEOUT = 60.0
VISIBILITY_TIMEOUT = 120.0
WORDS = (
    "invoice", "shipment", "account", "order", "confirm", "password", "reset", "welcome",
    "weekly", "digest", "report", "meeting", "agenda", "update", "release", "notes",
    "customer", "support", "ticket", "status",
)  # fmt: skip


def _env(data_dir: Path, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("MAILCUE_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env["MAILCUE_DATA_DIR"] = str(data_dir)
    env.update({f"MAILCUE_{name}_PORT": "0" for name in PORT_VARIABLES})
    if database_url:
        env["MAILCUE_DATABASE_URL"] = database_url
    return env


def _mailcue(*args: str, wrapper: Sequence[str] = (), python: Sequence[str] = ()) -> list[str]:
    """The ``mailcue`` command, optionally under a tool (``wrapper``) or Python options."""
    return [*wrapper, sys.executable, *python, "-m", "mailcue_server.cli", *args]


class Callgrind:
    """Instruction counts of ``mailcue serve`` under callgrind, from zero to a dump."""

    def __init__(self, output: Path) -> None:
        self.output = output
        self.wrapper = [
            "valgrind",
            "--tool=callgrind",
            "--separate-threads=yes",
            f"--callgrind-out-file={output}",
        ]

    def zero(self, pid: int) -> None:
        subprocess.run(["callgrind_control", "--zero", str(pid)], check=True, capture_output=True)

    def dump(self, pid: int) -> list[int]:
        """Dump the counts since :meth:`zero`; returns them per thread, largest first."""
        subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
        counts = []
        for part in self.output.parent.glob(self.output.name + ".1-*"):
            for line in part.read_text(errors="replace").splitlines():
                if line.startswith("summary:"):
                    counts.append(int(line.split()[1]))
                    break
        return sorted(counts, reverse=True)


class Node:
    """``mailcue serve`` as a child process; a thread drains its stderr into a queue."""

    def __init__(self, env: dict[str, str], cwd: Path, command: list[str]) -> None:
        self.proc = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.ports: dict[str, int] = {}
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_listening(self, timeout: float = START_TIMEOUT, last: str = "http") -> None:
        """Collect ``listening: <name> host:port`` lines up to ``last`` (serve logs HTTP last)."""
        deadline = time.monotonic() + timeout
        while last not in self.ports:
            try:
                line = self._queue.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise SystemExit(
                    "serve did not listen in time:\n" + "\n".join(self.lines)
                ) from None
            if line is None:
                raise SystemExit("serve exited during start-up:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if match := LISTENING.search(line):
                self.ports[match.group(1)] = int(match.group(3))

    def wait_api_built(self, timeout: float) -> None:
        """Wait until the HTTP API itself answers (serve builds it on a thread after start-up).

        The health probe is answered before the API exists; any other route waits
        for it, so an unauthenticated request returning at all means it is built.
        Idle memory is read after this, with the API in it.
        """
        url = f"http://127.0.0.1:{self.ports['http']}/api/v1/mailboxes"
        try:
            with urllib.request.urlopen(url, timeout=timeout):
                pass
        except urllib.error.HTTPError as answer:
            if answer.code != 401:
                raise SystemExit(f"the API answered {answer.code} before sign-in") from None

    def status(self, key: str) -> float:
        """A ``/proc/<pid>/status`` memory figure (``VmHWM``, ``VmRSS``) in MiB."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the server so far."""
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """User and system CPU time of the server so far (system: the kernel's work for it,
        which instruction counts leave out: thread wake-ups, socket and file writes)."""
        stat = Path(f"/proc/{self.proc.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait()


def recipient(n: int, recipients: int) -> str:
    return f"bench-{n % recipients}@{DOMAIN}"


def build_message(n: int, size: int, stamp: str, to: str) -> bytes:
    """A plausible transactional mail of about ``size`` bytes: text and HTML alternatives."""
    subject = " ".join(WORDS[(n + k) % len(WORDS)] for k in range(5))
    boundary = f"=_bench_{secrets.token_hex(6)}"
    head = (
        f"From: Example Shop <noreply@shop.example>\r\n"
        f"To: Bench Reader <{to}>\r\n"
        f"Reply-To: support@shop.example\r\n"
        f"Subject: [bench {n}] {subject}\r\n"
        f"Date: {stamp}\r\n"
        f"Message-ID: <bench.{n}.{secrets.token_hex(8)}@shop.example>\r\n"
        f"MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
        f"X-Mailer: bench_smtp.py\r\n"
        f"List-Unsubscribe: <mailto:unsubscribe@shop.example?subject=bench-{n}>\r\n"
        f"\r\n"
    )
    sentences: list[str] = []
    k = n
    # The text part and the HTML part say the same: about half the size each.
    while len(head) + 2 * sum(len(s) + 2 for s in sentences) + 300 < size:
        sentences.append(
            " ".join(WORDS[(k + j * 7) % len(WORDS)] for j in range(11)).capitalize() + "."
        )
        k += 3
    text = "\r\n".join(sentences)
    html = "\r\n".join(f"<p>{s}</p>" for s in sentences)
    body = (
        f"--{boundary}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
        f"--{boundary}\r\n"
        f"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body>{html}</body></html>\r\n"
        f"--{boundary}--\r\n"
    )
    return (head + body).encode()


@dataclass
class SendStats:
    started: float = 0.0
    finished: float = 0.0
    accepted: int = 0
    failures: list[str] = field(default_factory=list)


Mail = tuple[str, bytes]  # (recipient, message)


async def send_all(port: int, batches: list[list[Mail]]) -> SendStats:
    """Every batch over its own connection; all begin at once after every EHLO is done."""
    stats = SendStats()
    ready = asyncio.Barrier(len(batches) + 1)
    go = asyncio.Event()
    last = [0.0] * len(batches)

    async def worker(index: int, batch: list[Mail]) -> None:
        # Plain SMTP, the way an application in a test setup sends (aiosmtplib would
        # otherwise try STARTTLS and fail to verify our local CA).
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=120, start_tls=False)
        try:
            await client.connect()
            await client.ehlo()
        except BaseException:
            await ready.abort()  # the others would wait for this worker forever
            raise
        await ready.wait()
        await go.wait()
        try:
            for to, raw in batch:
                try:
                    await client.sendmail("noreply@shop.example", [to], raw)
                except aiosmtplib.SMTPException as exc:
                    stats.failures.append(repr(exc))
                else:
                    stats.accepted += 1
                    last[index] = time.perf_counter()
        finally:
            await client.quit()

    tasks = [asyncio.create_task(worker(i, b)) for i, b in enumerate(batches)]
    await ready.wait()
    stats.started = time.perf_counter()
    go.set()
    await asyncio.gather(*tasks)
    stats.finished = max(last)
    return stats


class ImapProbe:
    """One IMAP session, logged in before the mail is sent; each poll is a fresh SELECT.

    Logging in costs a password hash (Argon2, a few hundred ms), which is not
    what the visibility delay is about; SELECT re-reads the mailbox every time.
    """

    how = "IMAP SELECT INBOX (EXISTS) on a session logged in beforehand"

    def __init__(self, port: int) -> None:
        self._client = imaplib.IMAP4("127.0.0.1", port, timeout=30)
        self._client.login(ADDRESS, PASSWORD)

    def count(self) -> int:
        status, data = self._client.select("INBOX", readonly=True)
        if status != "OK" or not data or not isinstance(data[0], bytes):
            raise RuntimeError(f"SELECT INBOX failed: {status} {data!r}")
        return int(data[0])

    def close(self) -> None:
        self._client.logout()


class Pop3Probe:
    """POP3 fixes the maildrop at login (RFC 1939), so every poll logs in again."""

    how = "POP3 STAT, a new login per poll (this node has no IMAP listener)"

    def __init__(self, port: int) -> None:
        self._port = port

    def count(self) -> int:
        client = poplib.POP3("127.0.0.1", self._port, timeout=30)
        try:
            client.user(ADDRESS)
            client.pass_(PASSWORD)
            messages, _size = client.stat()
            return int(messages)
        finally:
            client.quit()

    def close(self) -> None:
        pass


def probe_for(node: Node) -> ImapProbe | Pop3Probe:
    """IMAP when the node logged a ``listening: imap`` line, else POP3."""
    if "imap" in node.ports:
        return ImapProbe(node.ports["imap"])
    return Pop3Probe(node.ports["pop3"])


def wait_visible(probe: ImapProbe | Pop3Probe, expected: int) -> tuple[float, int, int]:
    """Poll until the count reaches ``expected``. Returns (finished at, polls, last count)."""
    deadline = time.perf_counter() + VISIBILITY_TIMEOUT
    polls = 0
    count = -1
    while time.perf_counter() < deadline:
        count = probe.count()
        polls += 1
        if count >= expected:
            return time.perf_counter(), polls, count
        time.sleep(0.005)
    raise SystemExit(f"only {count} of {expected} messages visible after {VISIBILITY_TIMEOUT} s")


def start_profiler(pid: int, output: Path) -> subprocess.Popen[bytes]:
    """``py-spy record`` on ``pid``, given a second to attach (it prints no ready line)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    fmt = "flamegraph" if output.suffix == ".svg" else "raw"
    profiler = subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--rate", "250", "-f", fmt, "-o", str(output)],
        stdout=subprocess.DEVNULL,
        stderr=output.with_name(output.name + ".log").open("wb"),
    )
    time.sleep(1.0)
    return profiler


def stop_profiler(profiler: subprocess.Popen[bytes], output: Path) -> None:
    profiler.send_signal(signal.SIGINT)
    try:
        code = profiler.wait(timeout=60)
    except subprocess.TimeoutExpired:
        profiler.kill()
        code = profiler.wait()
    if code != 0:
        print(f"py-spy failed ({code}); see {output.name}.log")


@dataclass
class Figures:
    sent: SendStats
    probe_how: str
    poll_ms: float
    full_poll_ms: float
    visible_ms: float
    polls: int
    new: int
    rss_idle: float
    rss_peak: float
    cpu_server: float
    cpu_server_system: float
    cpu_client: float
    instructions: list[int] = field(default_factory=list)
    exit_code: int = 0


def create_bench_mailbox(env: dict[str, str], cwd: Path) -> None:
    created = subprocess.run(
        _mailcue("create-mailbox", "--address", ADDRESS, "--password", PASSWORD),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if created.returncode != 0:
        raise SystemExit(f"create-mailbox failed:\n{created.stdout}{created.stderr}")


def measure(
    node: Node, batches: list[list[Mail]], profile: str, callgrind: Callgrind | None = None
) -> Figures:
    """Send every batch, then wait until the first mailbox shows all of its share."""
    probe = probe_for(node)
    watched = sum(to == ADDRESS for batch in batches for to, _ in batch)
    try:
        began = time.perf_counter()
        before = probe.count()
        poll_ms = (time.perf_counter() - began) * 1000
        rss_idle = node.status("VmRSS")
        profiler = start_profiler(node.proc.pid, Path(profile)) if profile else None
        if callgrind is not None:
            callgrind.zero(node.proc.pid)
        user_before, system_before = node.cpu_split()
        cpu_server = user_before + system_before
        cpu_client = resource.getrusage(resource.RUSAGE_SELF)
        sent = asyncio.run(send_all(node.ports["smtp"], batches))
        user_after, system_after = node.cpu_split()
        cpu_server = user_after + system_after - cpu_server
        cpu_system = system_after - system_before
        usage = resource.getrusage(resource.RUSAGE_SELF)
        instructions = callgrind.dump(node.proc.pid) if callgrind is not None else []
        if profiler is not None:
            stop_profiler(profiler, Path(profile))
        if sent.failures:
            raise SystemExit(f"{len(sent.failures)} refused, first: {sent.failures[0]}")
        visible_at, polls, count = wait_visible(probe, before + watched)
        began = time.perf_counter()
        probe.count()
        full_poll_ms = (time.perf_counter() - began) * 1000
    finally:
        probe.close()
    return Figures(
        sent=sent,
        probe_how=probe.how,
        poll_ms=poll_ms,
        full_poll_ms=full_poll_ms,
        visible_ms=(visible_at - sent.finished) * 1000,
        polls=polls,
        new=count - before,
        rss_idle=rss_idle,
        rss_peak=node.status("VmHWM"),
        cpu_server=cpu_server,
        cpu_server_system=cpu_system,
        cpu_client=(usage.ru_utime - cpu_client.ru_utime) + (usage.ru_stime - cpu_client.ru_stime),
        instructions=instructions,
    )


def report(args: argparse.Namespace, mails: list[Mail], figures: Figures) -> None:
    sent = figures.sent
    elapsed = sent.finished - sent.started
    mean_size = sum(len(raw) for _, raw in mails) / len(mails)
    engine = "PostgreSQL" if args.database_url else "SQLite (WAL)"
    recipients = len({to for to, _ in mails})
    print(
        f"mailcue serve: {len(mails)} msgs x {mean_size:.0f} B to {recipients} recipient(s) "
        f"over {args.connections} connections, {engine}"
    )
    print(
        f"  accepted   {sent.accepted} in {elapsed:.2f} s = "
        f"{sent.accepted / elapsed:,.0f} msg/s (first MAIL to last 250)"
    )
    if sent.failures:
        print(f"  failures   {len(sent.failures)}, first: {sent.failures[0]}")
    print(
        f"  visible    {figures.visible_ms:.1f} ms after the last 250, {figures.new} new "
        f"in {ADDRESS} ({figures.polls} poll(s); {figures.probe_how}; "
        f"one poll takes {figures.poll_ms:.1f} ms before the mail, "
        f"{figures.full_poll_ms:.1f} ms after)"
    )
    print(f"  server RSS {figures.rss_idle:.0f} MiB idle, peak (VmHWM) {figures.rss_peak:.0f} MiB")
    print(
        f"  CPU while sending: server {figures.cpu_server:.2f} s "
        f"({figures.cpu_server / elapsed:.0%} of one core), "
        f"client {figures.cpu_client:.2f} s ({figures.cpu_client / elapsed:.0%})"
    )
    if sent.accepted:
        # Steadier than msg/s on a shared machine: other processes take cores, not cycles.
        print(
            f"  CPU per message: server {figures.cpu_server / sent.accepted * 1000:.3f} ms "
            f"({figures.cpu_server_system / sent.accepted * 1000:.3f} ms of it in the kernel), "
            f"client {figures.cpu_client / sent.accepted * 1000:.3f} ms"
        )
    if figures.instructions and sent.accepted:
        total = sum(figures.instructions)
        threads = " + ".join(
            f"{n / sent.accepted / 1e6:.3f}" for n in figures.instructions if n >= total / 100
        )
        print(
            f"  callgrind  {total / sent.accepted / 1e6:.3f} M instructions "
            f"per message while sending (by thread: {threads})"
        )
    if args.profile:
        print(f"  profile    {args.profile}")
    if args.cprofile:
        print(f"  cProfile   {args.cprofile} (the whole serve process, start-up included)")
    if figures.exit_code != 0:
        print(f"  serve exited with {figures.exit_code} after SIGTERM")


def rate(sent: SendStats) -> float:
    return sent.accepted / (sent.finished - sent.started)


def run_reference(
    work: Path, batches: list[list[Mail]], callgrind: Callgrind | None = None
) -> float:
    """msg/s of the bare aiosmtpd (scripts/bare_smtp.py) for the same mail and clients."""
    wrapper = callgrind.wrapper if callgrind is not None else []
    command = [*wrapper, sys.executable, str(Path(__file__).with_name("bare_smtp.py"))]
    node = Node(_env(work, ""), work, command)
    try:
        node.wait_listening(START_TIMEOUT * (10 if callgrind else 1), last="smtp")
        if callgrind is not None:
            callgrind.zero(node.proc.pid)
        user, system = node.cpu_split()
        sent = asyncio.run(send_all(node.ports["smtp"], batches))
        user_after, system_after = node.cpu_split()
        cpu, system = user_after + system_after - user - system, system_after - system
        instructions = callgrind.dump(node.proc.pid) if callgrind is not None else []
    finally:
        node.stop()
    if sent.failures:
        raise SystemExit(f"bare aiosmtpd refused {len(sent.failures)}: {sent.failures[0]}")
    print(
        f"bare aiosmtpd: {rate(sent):,.0f} msg/s, "
        f"server CPU {cpu / sent.accepted * 1000:.3f} ms per message "
        f"({system / sent.accepted * 1000:.3f} ms of it in the kernel)"
    )
    if instructions:
        per = sum(instructions) / sent.accepted / 1e6
        print(f"  callgrind  {per:.3f} M instructions per message while sending")
    return rate(sent)


def run_case(args: argparse.Namespace, work: Path, recipients: int) -> tuple[float, float]:
    """(reference msg/s or nan, mailcue msg/s) for one recipient count."""
    stamp = format_datetime(datetime.now(UTC))
    mails = [
        (to, build_message(n, args.size, stamp, to))
        for n in range(args.messages)
        for to in [recipient(n, recipients)]
    ]
    batches = [mails[i :: args.connections] for i in range(args.connections)]
    reference_callgrind = (
        Callgrind(work / f"callgrind-bare-{recipients}.out") if args.callgrind else None
    )
    reference = (
        float("nan") if args.no_reference else run_reference(work, batches, reference_callgrind)
    )
    env = _env(work / f"data-{recipients}", args.database_url)
    create_bench_mailbox(env, work)
    cprofile = (
        ["-m", "cProfile", "-o", str(Path(args.cprofile).resolve())] if args.cprofile else []
    )
    callgrind = Callgrind(work / f"callgrind-{recipients}.out") if args.callgrind else None
    wrapper = callgrind.wrapper if callgrind is not None else []
    node = Node(env, work, _mailcue("serve", wrapper=wrapper, python=cprofile))
    try:
        node.wait_listening(START_TIMEOUT * (10 if callgrind else 1))
        node.wait_api_built(START_TIMEOUT * (10 if callgrind else 1))
        figures = measure(node, batches, args.profile, callgrind)
    finally:
        code = node.stop()
    figures.exit_code = code
    report(args, mails, figures)
    return reference, rate(figures.sent)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=2200, help="approximate bytes per message")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--recipients", default="1,100,1000", help="comma-separated cases of distinct recipients"
    )
    parser.add_argument("--no-reference", action="store_true", help="skip the bare aiosmtpd runs")
    parser.add_argument("--database-url", default="", help="an empty database (default: SQLite)")
    parser.add_argument("--profile", default="", help="py-spy output while sending (.svg or raw)")
    parser.add_argument(
        "--cprofile", default="", help="run serve under cProfile, stats written here at exit"
    )
    parser.add_argument(
        "--callgrind", action="store_true", help="count the server's instructions (valgrind)"
    )
    args = parser.parse_args()
    cases = [int(part) for part in args.recipients.split(",")]
    if args.messages < args.connections or args.connections < 1:
        parser.error("need at least one message per connection")
    if args.database_url and len(cases) > 1:
        parser.error("--database-url takes one --recipients case (the database must be empty)")
    results = []
    with tempfile.TemporaryDirectory(prefix="mailcue-bench-") as tmp:
        for recipients in cases:
            results.append((recipients, *run_case(args, Path(tmp), recipients)))
            print()
    print(f"{'recipients':>10}  {'bare aiosmtpd':>13}  {'mailcue':>9}  ratio")
    for recipients, reference, ours in results:
        print(f"{recipients:>10}  {reference:>9,.0f} /s  {ours:>7,.0f} /s  {ours / reference:.2f}")


if __name__ == "__main__":
    main()
