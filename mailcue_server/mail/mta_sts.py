"""MTA-STS (RFC 8461) as a sender reads it: the ``_mta-sts`` TXT record, the policy file,
and which MX host names a policy allows.

Pure: text in, values out. The outbound worker fetches the record and the
file (``workers/outbound/mta_sts.py``); what we publish for our own domains is
``mail/dns_records.py``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from mailcue_server.mail.dns_records import MAX_MTA_STS_AGE, MtaStsMode

MAX_POLICY_BYTES = 64 * 1024  # RFC 8461 section 3.3: senders may refuse larger policies
POLICY_PATH = "/.well-known/mta-sts.txt"

_RECORD_START = re.compile(r"^v=STSv1\s*(;|$)")
_POLICY_ID = re.compile(r"^[A-Za-z0-9]{1,32}$")
_MX_PATTERN = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")


class InvalidPolicy(ValueError):
    """A policy file breaking RFC 8461 section 3.2: the domain counts as having no policy."""


@dataclass(frozen=True)
class Policy:
    """A parsed policy: the mode, the MX patterns and how long it may be cached."""

    mode: MtaStsMode
    mx: tuple[str, ...]
    max_age: int

    @property
    def enforced(self) -> bool:
        """In ``enforce`` mode a sender delivers only over verified TLS to a listed MX."""
        return self.mode is MtaStsMode.ENFORCE

    def allows(self, host: str) -> bool:
        """Whether an MX host name matches one of the policy's ``mx`` patterns."""
        return any(mx_matches(pattern, host) for pattern in self.mx)


def policy_id(records: Iterable[str]) -> str | None:
    """The ``id`` announced by the TXT records at ``_mta-sts.<domain>``, or None.

    RFC 8461 section 3.1: records not starting with ``v=STSv1`` are ignored;
    unless exactly one remains and it is well formed, the domain has no policy.
    """
    candidates = [text.strip() for text in records if _RECORD_START.match(text.strip())]
    if len(candidates) != 1:
        return None
    tags: dict[str, str] = {}
    for field in candidates[0].split(";"):
        if not field.strip():
            continue
        name, equals, value = field.partition("=")
        if not equals:
            return None
        tags.setdefault(name.strip(), value.strip())
    found = tags.get("id", "")
    return found if _POLICY_ID.match(found) else None


def parse_policy(text: str) -> Policy:
    """Read a policy file (``key: value`` lines, CRLF or LF).

    Unknown keys are ignored; of a repeated key other than ``mx`` the first counts.

    Raises:
        InvalidPolicy: With the reason (wrong version, mode or max_age, no mx).
    """
    values: dict[str, str] = {}
    mx: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, colon, value = line.partition(":")
        if not colon:
            raise InvalidPolicy(f"line {line.strip()[:60]!r} is not 'key: value'")
        key, value = key.strip(), value.strip()
        if key == "mx":
            mx.append(_mx_pattern(value))
        else:
            values.setdefault(key, value)
    if values.get("version") != "STSv1":
        raise InvalidPolicy("version is not STSv1")
    try:
        mode = MtaStsMode(values.get("mode", ""))
    except ValueError:
        raise InvalidPolicy(
            f"mode {values.get('mode')!r} is not enforce, testing or none"
        ) from None
    max_age = values.get("max_age", "")
    digits = max_age.isascii() and max_age.isdigit()  # "³".isdigit() is true
    if not digits or len(max_age) > 10 or int(max_age) > MAX_MTA_STS_AGE:
        raise InvalidPolicy(f"max_age {max_age!r} is not 0-{MAX_MTA_STS_AGE} seconds")
    if not mx and mode is not MtaStsMode.NONE:
        raise InvalidPolicy("the policy lists no mx")
    return Policy(mode, tuple(mx), int(max_age))


def mx_matches(pattern: str, host: str) -> bool:
    """RFC 8461 section 4.1: an exact name, or ``*.`` standing for exactly one leftmost label."""
    name = host.strip().rstrip(".").lower()
    if not pattern.startswith("*."):
        return name == pattern
    suffix = pattern[1:]  # ".example.com"
    label = name.removesuffix(suffix)
    return name.endswith(suffix) and bool(label) and "." not in label


def _mx_pattern(value: str) -> str:
    pattern = value.rstrip(".").lower()
    if not _MX_PATTERN.match(pattern):
        raise InvalidPolicy(f"mx {value!r} is not a host name or *.domain pattern")
    return pattern
