"""A real DNS server for tests: dnsmasq on a free loopback port with given records.

``dns_server(...)`` starts ``dnsmasq --no-daemon`` answering only from the
records it is given (no upstream, no /etc/hosts), and yields the resolver
address as ``"127.0.0.1:PORT"``, the format of ``MAILCUE_DNS_RESOLVER``.
Names under the ``local`` domains that have no record get NXDOMAIN, like a
real authoritative server. Without dnsmasq the test skips, or fails when
``MAILCUE_REQUIRE_SERVICES=1`` (CI installs ``dnsmasq-base``).

Example::

    async with dns_server(
        mx=[("example.test", "mx.example.test", 10)],
        hosts={"mx.example.test": ["127.0.0.1"]},
        txt={"sel._domainkey.example.test": ["v=DKIM1; k=rsa; p=MIIB...", "...rest"]},
    ) as resolver:
        settings = node_settings(tmp, dns_resolver=resolver)
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import dns.asyncquery
import dns.exception
import dns.message
import pytest

from services import services_required

DNSMASQ_CANDIDATES = ("/usr/sbin/dnsmasq", "/usr/local/sbin/dnsmasq")
DEFAULT_LOCAL_DOMAINS = ("test", "example", "invalid", "localhost")
START_TIMEOUT = 10.0
PORT_ATTEMPTS = 5

MxRecord = tuple[str, str, int]


def dnsmasq_path() -> str:
    """The dnsmasq binary, or skip (laptop) / fail (CI) with the reason."""
    found = shutil.which("dnsmasq") or next(
        (path for path in DNSMASQ_CANDIDATES if Path(path).is_file()), None
    )
    if found:
        return found
    message = "dnsmasq is not installed (Debian: apt-get install dnsmasq-base)"
    if services_required():
        pytest.fail(f"{message}; MAILCUE_REQUIRE_SERVICES=1 forbids skipping", pytrace=False)
    pytest.skip(message)
    raise AssertionError("unreachable")  # pytest.skip raises


def free_udp_tcp_port() -> int:
    """A loopback port that is free for both UDP and TCP right now (DNS uses both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = int(udp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
                return port
    raise RuntimeError("no loopback port is free for both UDP and TCP")


def dnsmasq_config(
    *,
    port: int,
    mx: Iterable[MxRecord] = (),
    hosts: Mapping[str, Sequence[str]] | None = None,
    txt: Mapping[str, Sequence[str]] | None = None,
    cnames: Mapping[str, str] | None = None,
    local: Iterable[str] = DEFAULT_LOCAL_DOMAINS,
    extra: Iterable[str] = (),
) -> str:
    """A dnsmasq.conf answering only from these records.

    A config file rather than argv because only the file parser honours quotes,
    which TXT strings containing commas (DKIM, SPF) need.
    """
    lines = [
        "no-resolv",
        "no-hosts",
        "no-poll",
        "listen-address=127.0.0.1",
        "bind-interfaces",
        f"port={port}",
        "cache-size=0",
    ]
    lines += [f"local=/{domain.strip('.')}/" for domain in local]
    lines += [f"mx-host={name},{target},{preference}" for name, target, preference in mx]
    for name, addresses in (hosts or {}).items():
        lines += [f"host-record={name},{address}" for address in addresses]
    for name, strings in (txt or {}).items():
        lines.append(f"txt-record={name}," + ",".join(_txt_string(text) for text in strings))
    lines += [f"cname={alias},{target}" for alias, target in (cnames or {}).items()]
    lines += [option.removeprefix("--") for option in extra]
    return "\n".join(lines) + "\n"


def _txt_string(text: str) -> str:
    """One character-string of a TXT record (at most 255 bytes), quoted for dnsmasq."""
    if len(text.encode()) > 255:
        raise ValueError("a TXT character-string holds at most 255 bytes; split it")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def _answers(port: int) -> bool:
    """True once something answers DNS over UDP on the port (any rcode counts)."""
    query = dns.message.make_query("ready.invalid.", "A")
    try:
        await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=0.2)
    except (dns.exception.Timeout, OSError):
        return False
    return True


@asynccontextmanager
async def dns_server(
    *,
    mx: Iterable[MxRecord] = (),
    hosts: Mapping[str, Sequence[str]] | None = None,
    txt: Mapping[str, Sequence[str]] | None = None,
    cnames: Mapping[str, str] | None = None,
    local: Iterable[str] = DEFAULT_LOCAL_DOMAINS,
    extra: Iterable[str] = (),
) -> AsyncIterator[str]:
    """Run dnsmasq with these records; yield ``"127.0.0.1:PORT"``; stop it afterwards.

    Args:
        mx: ``(domain, exchange, preference)`` triples.
        hosts: name -> IPv4/IPv6 addresses (A/AAAA records).
        txt: name -> the character-strings of one TXT record (each <= 255 bytes).
        cnames: alias -> target (the target must be a name dnsmasq knows).
        local: domains answered authoritatively: unknown names there are NXDOMAIN.
        extra: further raw dnsmasq options.
    """
    binary = dnsmasq_path()
    mx, local, extra = list(mx), list(local), list(extra)
    last_error = ""
    with tempfile.TemporaryDirectory(prefix="mailcue-dnsmasq-") as workdir:
        config = Path(workdir) / "dnsmasq.conf"
        log = Path(workdir) / "dnsmasq.log"
        for _ in range(PORT_ATTEMPTS):
            port = free_udp_tcp_port()
            config.write_text(
                dnsmasq_config(
                    port=port, mx=mx, hosts=hosts, txt=txt, cnames=cnames, local=local, extra=extra
                ),
                encoding="utf-8",
            )
            with log.open("wb") as sink:
                process = await asyncio.create_subprocess_exec(
                    binary,
                    "--no-daemon",
                    f"--conf-file={config}",
                    "--pid-file=",
                    "--user=root",
                    "--group=root",
                    "--log-facility=-",
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=sink,
                    stderr=sink,
                )
            try:
                if await _wait_ready(process, port):
                    yield f"127.0.0.1:{port}"
                    return
                last_error = log.read_text(encoding="utf-8", errors="replace").strip()
            finally:
                await _stop(process)
    raise RuntimeError(f"dnsmasq did not start: {last_error}")


async def _wait_ready(process: asyncio.subprocess.Process, port: int) -> bool:
    """Poll until dnsmasq answers; False if it exited (e.g. the port was taken meanwhile)."""
    deadline = asyncio.get_running_loop().time() + START_TIMEOUT
    while asyncio.get_running_loop().time() < deadline:
        if process.returncode is not None:
            return False
        if await _answers(port):
            return True
        await asyncio.sleep(0.02)
    return False


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), 5)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
