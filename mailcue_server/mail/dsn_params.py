"""The RFC 3461 envelope parameters a sender gives for delivery status notifications.

Pure: reads ``RET`` and ``ENVID`` of ``MAIL FROM`` and ``NOTIFY`` and
``ORCPT`` of ``RCPT TO`` (values keep their case; ``xtext`` is decoded,
section 4), and holds what a queued message keeps of them. The SMTP server
takes them off the command before aiosmtpd sees it (``workers/smtp``); the
outbound queue stores them and bounces by them (``workers/outbound``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

MAX_ENVID = 100  # RFC 3461 section 4.4
MAX_ORCPT = 500  # section 4.2
_XTEXT_HEX = re.compile(r"\+([0-9A-F]{2})")
_ADDR_TYPE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+")  # an atom (RFC 5322)
_NOTIFY_VALUES = frozenset({"SUCCESS", "FAILURE", "DELAY"})
MAIL_KEYWORDS = frozenset({"RET", "ENVID"})
RCPT_KEYWORDS = frozenset({"NOTIFY", "ORCPT"})


class Return(StrEnum):
    """What a failure DSN carries of the message (``RET``, section 4.3)."""

    FULL = "FULL"  # the whole message (message/rfc822)
    HDRS = "HDRS"  # its header only (text/rfc822-headers)


@dataclass(frozen=True, slots=True)
class RecipientDsn:
    """What the sender asked for one recipient.

    Attributes:
        notify: ``NOTIFY`` as given (``NEVER``, or some of ``SUCCESS``,
            ``FAILURE``, ``DELAY``); empty when not given.
        orcpt: ``ORCPT`` decoded, ``addr-type;address`` (``rfc822;a@b.example``);
            empty when not given.
    """

    notify: tuple[str, ...] = ()
    orcpt: str = ""

    def wants_failure_notice(self) -> bool:
        """A failure DSN unless ``NOTIFY`` was given without ``FAILURE`` (``NEVER``...)."""
        return not self.notify or "FAILURE" in self.notify


@dataclass(frozen=True, slots=True)
class DsnRequest:
    """The DSN parameters of one SMTP transaction.

    Attributes:
        ret: ``RET``, or None when the sender left it to us.
        envid: ``ENVID`` decoded, or empty.
        recipients: Per accepted recipient (lower-cased address), its parameters.
    """

    ret: Return | None = None
    envid: str = ""
    recipients: dict[str, RecipientDsn] = field(default_factory=dict)

    def for_recipient(self, address: str) -> RecipientDsn:
        return self.recipients.get(address.lower(), RecipientDsn())


class DsnParameterError(ValueError):
    """A DSN parameter is malformed or repeated; the message says which."""


def decode_xtext(text: str) -> str:
    """RFC 3461 section 4: ``+XX`` is the byte XX; other characters are themselves.

    Raises:
        DsnParameterError: A character xtext does not allow, or a bad ``+`` escape.
    """
    if any(not 33 <= ord(c) <= 126 or c == "=" for c in text):
        raise DsnParameterError("is not xtext")
    if "+" in _XTEXT_HEX.sub("", text):
        raise DsnParameterError("has a '+' not followed by two upper-case hex digits")
    decoded = _XTEXT_HEX.sub(lambda found: chr(int(found.group(1), 16)), text)
    if any(ord(c) < 32 or ord(c) > 126 for c in decoded):
        raise DsnParameterError("encodes a control or non-ASCII character")
    return decoded


def encode_xtext(text: str) -> str:
    """The xtext form of printable ASCII ``text`` (for passing a parameter on)."""
    return "".join(c if 33 <= ord(c) <= 126 and c not in "+=" else f"+{ord(c):02X}" for c in text)


def split_parameters(
    tokens: Sequence[str], keywords: frozenset[str]
) -> tuple[dict[str, str], list[str]]:
    """Take the ``KEY=value`` tokens named in ``keywords`` out of a command's parameters.

    Returns:
        The taken ones (upper-case key to value as written) and the rest, in order.

    Raises:
        DsnParameterError: One of them repeated or without a value.
    """
    taken: dict[str, str] = {}
    rest: list[str] = []
    for token in tokens:
        key, equals, value = token.partition("=")
        name = key.upper()
        if name not in keywords:
            rest.append(token)
            continue
        if not equals or not value:
            raise DsnParameterError(f"{name} needs a value")
        if name in taken:
            raise DsnParameterError(f"{name} given twice")
        taken[name] = value
    return taken, rest


def mail_parameters(taken: dict[str, str]) -> tuple[Return | None, str]:
    """``RET`` and ``ENVID`` (decoded) of ``MAIL FROM``.

    Raises:
        DsnParameterError: A malformed value.
    """
    ret = None
    if "RET" in taken:
        try:
            ret = Return(taken["RET"].upper())
        except ValueError:
            raise DsnParameterError("RET must be FULL or HDRS") from None
    envid = ""
    if "ENVID" in taken:
        try:
            envid = decode_xtext(taken["ENVID"])
        except DsnParameterError as exc:
            raise DsnParameterError(f"ENVID {exc}") from None
        if len(envid) > MAX_ENVID:
            raise DsnParameterError(f"ENVID is longer than {MAX_ENVID} characters")
    return ret, envid


def rcpt_parameters(taken: dict[str, str]) -> RecipientDsn:
    """``NOTIFY`` and ``ORCPT`` (decoded) of ``RCPT TO``.

    Raises:
        DsnParameterError: A malformed value.
    """
    notify: tuple[str, ...] = ()
    if "NOTIFY" in taken:
        values = tuple(value.strip().upper() for value in taken["NOTIFY"].split(","))
        never = values == ("NEVER",)
        if not never and (not set(values) <= _NOTIFY_VALUES or len(set(values)) != len(values)):
            raise DsnParameterError("NOTIFY must be NEVER or a list of SUCCESS, FAILURE, DELAY")
        notify = values
    orcpt = ""
    if "ORCPT" in taken:
        kind, semicolon, address = taken["ORCPT"].partition(";")
        if not semicolon or not _ADDR_TYPE.fullmatch(kind) or not address:
            raise DsnParameterError("ORCPT must be addr-type;address, e.g. rfc822;a@b.example")
        try:
            decoded = decode_xtext(address)
        except DsnParameterError as exc:
            raise DsnParameterError(f"ORCPT {exc}") from None
        orcpt = f"{kind};{decoded}"
        if len(orcpt) > MAX_ORCPT:
            raise DsnParameterError(f"ORCPT is longer than {MAX_ORCPT} characters")
    return RecipientDsn(notify=notify, orcpt=orcpt)
