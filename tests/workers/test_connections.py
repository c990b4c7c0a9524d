"""The connection counting every listener shares (workers/connections.py).

The listeners' behaviour over real sockets is in tests/test_connection_caps.py;
these cases pin the arithmetic: which client a peer counts as, when a cap
refuses, that a ticket frees its slot once, and what the open-file limit
leaves for connections.
"""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from mailcue_server.workers.connections import (
    REFUSALS_IN_FLIGHT,
    ConnectionBudget,
    ConnectionCaps,
    ConnectionLimiter,
    budget_for,
    client_of,
)


def test_one_client_is_capped_and_others_are_not() -> None:
    limiter = ConnectionLimiter("imap", total=10, per_client=2)
    tickets = [limiter.admit("10.0.0.1"), limiter.admit("10.0.0.1")]
    assert all(tickets)
    assert limiter.admit("10.0.0.1") is None
    assert limiter.admit("10.0.0.2") is not None
    assert limiter.open == 3


def test_the_listener_total_caps_every_client() -> None:
    limiter = ConnectionLimiter("http", total=3, per_client=2)
    assert limiter.admit("a") and limiter.admit("b") and limiter.admit("c")
    assert limiter.admit("d") is None


def test_a_ticket_frees_its_slot_once() -> None:
    limiter = ConnectionLimiter("pop3", total=5, per_client=1)
    ticket = limiter.admit("10.0.0.1")
    assert ticket is not None
    assert limiter.admit("10.0.0.1") is None
    ticket.release()
    ticket.release()  # a second release must not free someone else's slot
    assert limiter.open == 0
    again = limiter.admit("10.0.0.1")
    assert again is not None
    assert limiter.admit("10.0.0.1") is None


def test_listeners_share_the_process_budget() -> None:
    budget = ConnectionBudget(3)
    caps = ConnectionCaps(total=10, per_client=10, budget=budget)
    smtp, imap = caps.limiter("smtp"), caps.limiter("imap")
    first = smtp.admit("a")
    assert first and smtp.admit("a") and imap.admit("b")
    assert imap.admit("c") is None
    assert smtp.admit("c") is None
    first.release()
    assert imap.admit("c") is not None
    assert budget.open == 3


def test_a_listener_cap_never_exceeds_the_budget() -> None:
    caps = ConnectionCaps(total=1000, per_client=200, budget=ConnectionBudget(300))
    assert caps.limiter("smtp").total == 300
    assert ConnectionCaps(total=50, budget=ConnectionBudget(300)).limiter("smtp").total == 50


def test_refusals_in_flight_are_bounded() -> None:
    limiter = ConnectionLimiter("imaps", total=1, per_client=1)
    slots = [limiter.refusal() for _ in range(REFUSALS_IN_FLIGHT)]
    assert all(slots)
    assert limiter.refusal() is None
    assert limiter.admit("a") is not None  # refusals take no connection slot
    slot = slots[0]
    assert slot is not None
    slot.release()
    assert limiter.refusal() is not None


@pytest.mark.parametrize(
    ("peername", "client"),
    [
        (("127.0.0.1", 40000), "127.0.0.1"),
        (("::ffff:192.0.2.7", 40000, 0, 0), "192.0.2.7"),
        (("2001:db8:1:2::1", 40000, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:ffff:ffff:ffff:ffff", 1, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:3::1", 40000, 0, 0), "2001:db8:1:3::/64"),
        (("fe80::1%eth0", 40000, 0, 2), "fe80::/64"),
        (None, "-"),
        ("/run/mailcue.sock", "-"),
    ],
)
def test_the_client_a_peer_counts_as(peername: object, client: str) -> None:
    assert client_of(peername) == client


@pytest.mark.parametrize(
    ("open_files", "connections"),
    [(1_048_576, 786_432), (20_000, 15_000), (1024, 768), (300, 150), (64, 32)],
)
def test_what_the_open_file_limit_leaves_for_connections(
    open_files: int, connections: int
) -> None:
    assert budget_for(open_files) == connections


def test_the_soft_open_file_limit_is_raised_to_the_hard_one() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard <= 512:
        pytest.skip("needs a finite hard limit above 512")
    # A fresh process with a login shell's low soft limit, as `mailcue serve` may start.
    script = (
        "import resource\n"
        "_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))\n"
        "from mailcue_server.workers.connections import raise_open_file_limit\n"
        "print(raise_open_file_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert result.stdout.split() == [str(hard), str(hard)]
