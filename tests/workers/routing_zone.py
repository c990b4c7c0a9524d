"""The DNS zone the outbound routing tests ask (dnsmasq serves it), and their helpers."""

from __future__ import annotations

from datetime import UTC, datetime

import dns.asyncresolver

from mailcue_server.store import dns_lookup

SENDER = "sender@local.test"
UNREACHABLE = "127.0.0.2"  # loopback, but our remote SMTP listens on 127.0.0.1 only
ZONE_MX = [
    # Listed out of order: the answer must come back sorted by preference.
    ("prefs.test", "third.prefs.test", 30),
    ("prefs.test", "tie-a.prefs.test", 10),
    ("prefs.test", "first.prefs.test", 5),
    ("prefs.test", "tie-b.prefs.test", 10),
    ("fallback.test", "down.fallback.test", 5),
    ("fallback.test", "up.fallback.test", 10),
    ("null.test", ".", 0),  # RFC 7505: "MX 0 ."
    ("mixed.test", ".", 0),  # a root target beside a real one is no null MX
    ("mixed.test", "mx.mixed.test", 10),
    ("ghost.test", "nowhere.ghost.test", 5),  # a host with no A/AAAA (NXDOMAIN)
    ("ghost.test", "mx.ghost.test", 10),
    ("lost.test", "nowhere.lost.test", 10),  # no host name exists (NXDOMAIN for each)
    ("lost.test", "gone.lost.test", 20),
    ("bare.test", "nowhere.bare.test", 10),  # one host name does not exist,
    ("bare.test", "mx.bare.test", 20),  # the other exists without an address
    ("target.test", "mx.target.test", 10),
    ("allnull.test", ".", 0),  # every MX names the root: a null MX too
    ("allnull.test", ".", 10),
    ("stsgone.test", "nowhere.stsgone.test", 10),  # the one host its MTA-STS policy lists
    ("stsgone.test", "mx.stsgone.test", 20),  # reachable, but not listed
]
ZONE_HOSTS = {
    "implicit.test": ["127.0.0.1"],
    "v6only.test": ["::1"],
    "web.test": ["127.0.0.1"],
    "down.fallback.test": [UNREACHABLE],
    **{
        name: ["127.0.0.1"]
        for name in (
            "first.prefs.test",
            "tie-a.prefs.test",
            "tie-b.prefs.test",
            "third.prefs.test",
            "up.fallback.test",
            "mx.mixed.test",
            "mx.ghost.test",
            "mx.target.test",
            "mx.stsgone.test",
            "mta-sts.stsgone.test",
        )
    },
    "allnull.test": ["127.0.0.1"],  # an address must not make it an implicit MX
}
ZONE_CNAMES = {
    "alias.test": "target.test",  # the domain is an alias of one with MX records
    "www-alias.test": "web.test",  # an alias of a name with only an A record
}
ZONE_TXT = {
    "txtonly.test": ["v=spf1 -all"],  # exists, but no MX, A or AAAA
    "mx.bare.test": ["a host name without A or AAAA"],
    "_mta-sts.stsgone.test": ["v=STSv1; id=1;"],
}
STS_POLICY = "version: STSv1\r\nmode: enforce\r\nmx: nowhere.stsgone.test\r\nmax_age: 86400\r\n"


def now() -> datetime:
    return datetime.now(UTC)


def mail(subject: str, to: str) -> bytes:
    return (
        f"From: {SENDER}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}@local.test>\r\n\r\nHello.\r\n"
    ).encode()


def resolver_at(address: str, timeout: float = 2.0) -> dns.asyncresolver.Resolver:
    host, _, port = address.rpartition(":")
    return dns_lookup.make_resolver((host, int(port)), timeout=timeout)
