"""Reading header values cheaply: RFC 2047 words, message ids, address lists and dates.

The index reads these for every stored message, so the usual forms take a
quick path and only the rest goes to the stdlib's general parsers
(STACK-NOTES, "Parsing mail on the hot path"). Values come from
:func:`mailcue_server.mail.header_block.fields_by_name`.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta, timezone
from email.errors import MessageError
from email.header import decode_header, make_header
from email.utils import getaddresses, parsedate_to_datetime

from mailcue_server.mail.header_block import Fields, first_value

_MSG_ID = re.compile(r"<[^<>\s]+>")
# The usual RFC 5322 section 3.3 date; anything else goes to email.utils.
_DATE = re.compile(
    r"(?:[A-Z][a-z]{2}, )?(\d{1,2}) ([A-Z][a-z]{2}) ([1-9]\d{3}) (\d{2}):(\d{2})(?::(\d{2}))? "
    r"([+-])(\d{2})(\d{2})"
)
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}
_ADDR_SPEC = r"[^\s<>()\[\]\",;:\\@]+@[^\s<>()\[\]\",;:\\@]+"
# The address forms nearly all mail uses; anything else goes to email.utils.getaddresses,
# whose strict parsing costs about 20 us a header here.
_SIMPLE_ADDRESS = re.compile(
    rf"\s*(?:(?P<name>[^\"<>()\[\],;:\\@]*?)\s*<(?P<angle>{_ADDR_SPEC})>|(?P<bare>{_ADDR_SPEC}))\s*"
)


def decoded_text(value: str) -> str:
    """A header value with its RFC 2047 encoded words decoded."""
    if "=?" not in value:
        return value.strip()
    try:
        return str(make_header(decode_header(value))).strip()
    except (MessageError, UnicodeError, LookupError, ValueError):
        return value.strip()


def first_message_id(fields: Fields, name: str) -> str | None:
    """The first ``<id>`` in the first value of a field (``Message-ID``, ``In-Reply-To``)."""
    match = _MSG_ID.search(first_value(fields, name))
    return match.group(0) if match else None


def message_ids(fields: Fields, name: str) -> tuple[str, ...]:
    """Every ``<id>`` in every value of a field (``References``), in order."""
    return tuple(_MSG_ID.findall(" ".join(fields.get(name, ()))))


def addresses(fields: Fields, name: str) -> list[tuple[str, str]]:
    """``(decoded name, address)`` pairs; addresses are split before names are decoded."""
    values = fields.get(name)
    return list(_address_list(tuple(values))) if values else []


@functools.lru_cache(maxsize=1024)
def _address_list(values: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    """Pure, and a sender (or a recipient) writes the same header to many messages."""
    pairs = _simple_addresses(list(values))
    if pairs is None:
        pairs = [(display, addr) for display, addr in getaddresses(values) if addr]
    return tuple((decoded_text(display), addr) for display, addr in pairs)


def _simple_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """``addr`` and ``Name <addr>`` lists without quotes or comments, else ``None``."""
    pairs: list[tuple[str, str]] = []
    for value in values:
        if '"' in value or "(" in value:
            return None
        for item in value.split(","):
            if not item.strip():
                continue
            match = _SIMPLE_ADDRESS.fullmatch(item)
            if match is None:
                return None
            if match.group("bare"):
                pairs.append(("", match.group("bare")))
            else:
                pairs.append((" ".join(match.group("name").split()), match.group("angle")))
    return pairs


@functools.lru_cache(maxsize=1024)
def parse_date(value: str) -> datetime | None:
    """A Date header as an aware UTC datetime, or ``None`` when absent or unreadable.

    Remembered: mail sent in bursts carries the same few Date headers.
    """
    if not value:
        return None
    quick = _DATE.fullmatch(value.strip())
    if quick is not None and quick.group(2) in _MONTHS:
        return _quick_date(quick)
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)  # RFC 5322 "-0000": the zone is unknown
    return parsed.astimezone(UTC)


def _quick_date(match: re.Match[str]) -> datetime | None:
    """The common form without email.utils' general parser; the same result."""
    day, month, year, hour, minute, second, sign, zone_h, zone_m = match.groups()
    offset = timedelta(hours=int(zone_h), minutes=int(zone_m))
    try:
        when = datetime(
            int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second or 0)
        )
        if sign == "-" and not offset:
            return when.replace(tzinfo=UTC)  # RFC 5322 "-0000": the zone is unknown
        zone = timezone(-offset if sign == "-" else offset)
        return when.replace(tzinfo=zone).astimezone(UTC)
    except (ValueError, OverflowError):
        return None
