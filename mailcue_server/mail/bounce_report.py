"""Reading delivery status notifications: which recipient failed, for good or for now.

Pure: a raw message in, one :class:`RecipientReport` per ``message/delivery-status``
recipient block out (RFC 3464 section 2.3). A notification is a DSN when it is a
``multipart/report; report-type=delivery-status`` (RFC 6522) or, as some MTAs
send it, any message that carries a ``message/delivery-status`` part.

The outcome of a recipient comes from its ``Status`` class (RFC 3463: 2 success,
4 persistent transient failure, 5 permanent failure), or from ``Action`` when the
status is missing or unreadable.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass
from email import message_from_bytes, message_from_string, policy
from email.message import Message
from email.parser import HeaderParser
from typing import Literal

OutcomeName = Literal["delivered", "hard_bounce", "soft_bounce"]
MAX_ADDRESS = 320  # RFC 5321's path limit is lower; anything longer is not an address

_STATUS = re.compile(r"^\s*([245])\.\d{1,3}\.\d{1,3}")
_SMTP_CODE = re.compile(r"^\s*([245]\d\d)(?:[\s-]|$)")
_ACTIONS: dict[str, OutcomeName] = {
    "failed": "hard_bounce",
    "delayed": "soft_bounce",
    "delivered": "delivered",
    "relayed": "delivered",
    "expanded": "delivered",
}
_CLASSES: dict[str, OutcomeName] = {"2": "delivered", "4": "soft_bounce", "5": "hard_bounce"}


@dataclass(frozen=True)
class RecipientReport:
    """One recipient block of a DSN."""

    recipient: str
    outcome: OutcomeName
    status: str | None
    smtp_code: int | None
    diagnostic_code: str | None


@dataclass(frozen=True)
class BounceReport:
    is_dsn: bool
    recipients: tuple[RecipientReport, ...] = ()


def read_bounce(raw: bytes | str) -> BounceReport:
    """The recipients a notification reports on; ``is_dsn`` false for any other message."""
    message = (
        message_from_bytes(raw, policy=policy.compat32)
        if isinstance(raw, bytes)
        else message_from_string(raw, policy=policy.compat32)
    )
    status_parts = [p for p in message.walk() if p.get_content_type() == "message/delivery-status"]
    is_report = (
        message.get_content_type() == "multipart/report"
        and message.get_param("report-type", "", header="content-type") == "delivery-status"
    )
    if not status_parts:
        return BounceReport(is_dsn=is_report)
    found: list[RecipientReport] = []
    for part in status_parts:
        # The first block is about the message; the others are one per recipient.
        for block in _blocks(part)[1:]:
            report = _recipient(block)
            if report is not None:
                found.append(report)
    return BounceReport(is_dsn=True, recipients=tuple(found))


def _blocks(part: Message) -> list[Message]:
    """The header blocks of a ``message/delivery-status`` part.

    The stdlib parser splits a part into blocks itself, also when it is sent in
    base64 or quoted-printable (then the "blocks" are encoded text): such a
    part is put back together, decoded and split here.
    """
    payload = part.get_payload()
    encoding = str(part.get("content-transfer-encoding", "7bit")).strip().lower()
    plain = encoding in ("", "7bit", "8bit", "binary")
    if plain and isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    body = (
        "\n".join(b.as_string() if isinstance(b, Message) else str(b) for b in payload)
        if isinstance(payload, list)
        else str(payload)
    )
    text = body if plain else _decoded(body, encoding)
    chunks = re.split(r"\r?\n[ \t]*\r?\n", text.strip())
    return [HeaderParser(policy=policy.compat32).parsestr(chunk) for chunk in chunks if chunk]


def _decoded(body: str, encoding: str) -> str:
    try:
        if encoding == "base64":
            data = base64.b64decode("".join(body.split()))
        elif encoding == "quoted-printable":
            data = quopri.decodestring(body.encode("ascii", "replace"))
        else:
            return body
    except (binascii.Error, ValueError):
        return ""
    return data.decode("utf-8", "replace")


def _recipient(block: Message) -> RecipientReport | None:
    address = _address(block.get("Final-Recipient") or block.get("Original-Recipient"))
    if not address:
        return None
    status = _clean(block.get("Status"))
    diagnostic = _typed_value(block.get("Diagnostic-Code"))
    outcome = _outcome(status, _clean(block.get("Action")))
    if outcome is None:
        return None
    code = _SMTP_CODE.match(diagnostic) if diagnostic else None
    return RecipientReport(
        recipient=address,
        outcome=outcome,
        status=status,
        smtp_code=int(code.group(1)) if code else None,
        diagnostic_code=diagnostic,
    )


def _outcome(status: str | None, action: str | None) -> OutcomeName | None:
    matched = _STATUS.match(status or "")
    if matched:
        return _CLASSES[matched.group(1)]
    return _ACTIONS.get((action or "").lower())


def _address(value: str | None) -> str | None:
    """``rfc822; <Bob@Example.org>`` as ``bob@example.org``."""
    text = _typed_value(value)
    if not text:
        return None
    text = text.strip().strip("<>").strip()
    if text.count("@") != 1 or any(ch.isspace() for ch in text) or len(text) > MAX_ADDRESS:
        return None
    return text.lower()


def _typed_value(value: str | None) -> str | None:
    """The part after the ``type;`` prefix (``smtp; 550 ...``, ``rfc822; a@b``)."""
    text = _clean(value)
    if text is None:
        return None
    kind, sep, rest = text.partition(";")
    return rest.strip() if sep and " " not in kind.strip() else text


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = " ".join(str(value).split())
    return text or None
