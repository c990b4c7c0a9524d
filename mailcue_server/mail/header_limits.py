"""How large a message's header section may be when mail is received, and NUL in mail.

Opening a message parses its header section with the stdlib's ``policy.default``,
which costs about 10 us to 1 ms a field and grows faster than the field does
(measured here: 1,000 short fields 0.1 s, 100,000 fields 8 s, one 1 MiB ``Cc``
of 50,000 addresses 65 s). A message of 1,000,000 fields kept a server busy
for 18 s each time its detail was read. So SMTP DATA, IMAP APPEND and the
API's inject refuse a header section past either limit below; mail stored
before these limits stays readable (reading parses off the event loop).

- :data:`MAX_HEADER_FIELDS` = 1,000 fields. Real mail carries 10 to 50; a
  long relay path with ARC sets and list headers stays under 200.
- :data:`MAX_HEADER_BYTES` = 256 KiB for the whole section, Exchange Online's
  header limit; sendmail refuses at 32 KiB (``MaxHeadersLength``), Exim at
  1 MiB (``header_maxsize``). It leaves room for a ``To`` of several thousand
  addresses while bounding what one read may cost.

The section is read as mail parsers read it: the fields and their
continuation lines from the top, up to the first line that is neither (the
empty line before the body, as a rule). Only the first
``MAX_HEADER_BYTES + 1`` octets are ever looked at, so the check costs the
same on a message of any size.

NUL (``%x00``) is not mail data: RFC 2045 section 2.7 and 2.8 exclude it
from 7bit and 8bit content, and only BINARYMIME (RFC 3030), which we do not
offer, lifts that; RFC 5322 section 4 keeps it only in obsolete syntax that
must not be generated. C-string based software downstream (and PostgreSQL's
text columns, which our index uses) cut or refuse it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from mailcue_server.errors import LimitExceeded

MAX_HEADER_FIELDS = 1000
"""Most header fields a received message may have (see the module docstring)."""

MAX_HEADER_BYTES = 256 * 1024
"""Largest header section a received message may have, in octets with line ends."""

# Header lines as the stdlib's feed parser tells them (email.feedparser.headerRE):
# a field ``name:`` (the name may be empty) or a continuation starting with a blank.
_HEADER_LINES = re.compile(rb"(?:(?:[\041-\071\073-\176]*:|[ \t])[^\n]*\n)*")
_HEADER_LINE_START = re.compile(rb"[\041-\071\073-\176]*:|[ \t]")


class Breach(StrEnum):
    """Which rule a message breaks."""

    FIELDS = "fields"
    SIZE = "size"
    NUL = "nul"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A broken rule and the sentence that tells the sender, naming the limit."""

    breach: Breach
    text: str


def header_refusal(raw: bytes) -> Refusal | None:
    """Whether ``raw``'s header section is over :data:`MAX_HEADER_FIELDS` or
    :data:`MAX_HEADER_BYTES`; ``None`` when it is within both."""
    window = memoryview(raw)[: MAX_HEADER_BYTES + 1].tobytes()
    found = _HEADER_LINES.match(window)
    end = found.end() if found is not None else 0
    rest = window[end:]
    # A header line that goes on past the window, or a last line without a line end.
    open_line = b"\n" not in rest and _HEADER_LINE_START.match(rest) is not None
    if open_line:
        end = len(window)
    if end > MAX_HEADER_BYTES:
        return Refusal(Breach.SIZE, f"Message header is larger than {MAX_HEADER_BYTES:,} bytes")
    section = window[:end]
    lines = section.count(b"\n") + (0 if section.endswith(b"\n") or not section else 1)
    continued = section.count(b"\n ") + section.count(b"\n\t") + (section[:1] in (b" ", b"\t"))
    fields = lines - continued
    if fields > MAX_HEADER_FIELDS:
        return Refusal(Breach.FIELDS, f"Message header has more than {MAX_HEADER_FIELDS:,} fields")
    return None


def content_refusal(raw: bytes) -> Refusal | None:
    """:func:`header_refusal`, or a NUL anywhere in ``raw``."""
    if b"\0" in raw:
        return Refusal(Breach.NUL, "Message contains a NUL character")
    return header_refusal(raw)


def check_received(raw: bytes) -> None:
    """Refuse a message to be stored by IMAP APPEND or the API (see :func:`content_refusal`).

    Raises:
        LimitExceeded: With the sentence naming the broken rule.
    """
    refusal = content_refusal(raw)
    if refusal is not None:
        raise LimitExceeded(refusal.text)
