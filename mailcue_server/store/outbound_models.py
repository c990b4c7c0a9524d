"""Tortoise models of the outbound queue: messages waiting to leave, their recipients, and
the MTA-STS policies learnt from recipient domains.

Only ``store/`` imports this module. A queued message is one row holding the
exact bytes and envelope sender, plus one row per recipient with that
recipient's outcome, so a message half-delivered before a crash is resumed
for the recipients still pending and never resent to the others.

A worker owns a message while ``lease_until`` lies in the future and
``lease_owner`` is its claim token (``store/outbound.py``); a worker that dies
lets the lease run out, and another picks the message up.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.indexes import Index

from mailcue_server.store.model_base import StoreModel


class QueueState(StrEnum):
    """Where a queued message stands as a whole."""

    QUEUED = "queued"  # some recipient is still pending
    DELIVERED = "delivered"  # every recipient was delivered
    FAILED = "failed"  # every recipient failed (bounced)
    PARTIAL = "partial"  # some delivered, some failed


class RecipientState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class OutboundMessage(StoreModel):
    """A message on its way out: exact bytes, envelope sender, schedule and lease."""

    id = fields.BigIntField(primary_key=True)
    # "" is the null sender <> (bounces): its failures are never bounced.
    mail_from = fields.CharField(max_length=320)
    raw_bytes = fields.BinaryField()
    size = fields.IntField()
    state = fields.CharField(max_length=16, default=QueueState.QUEUED.value)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField()
    lease_owner = fields.CharField(max_length=64, null=True)
    lease_until = fields.DatetimeField(null=True)
    last_error = fields.TextField(default="")
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField(auto_now=True)
    # RFC 3461 from MAIL FROM: RET (FULL, HDRS; "" left to us) and ENVID (decoded).
    dsn_ret = fields.CharField(max_length=4, default="", db_default="")
    dsn_envid = fields.CharField(max_length=100, default="", db_default="")

    class Meta:
        table = "outbound_messages"
        # The claim query: queued rows whose attempt is due, oldest schedule first.
        indexes = (Index(fields=["state", "next_attempt_at"]),)


class OutboundRecipient(StoreModel):
    """One envelope recipient of a queued message and what became of it."""

    id = fields.BigIntField(primary_key=True)
    message: fields.ForeignKeyRelation[OutboundMessage] = fields.ForeignKeyField(
        "mailcue.OutboundMessage", related_name="recipients", on_delete=fields.CASCADE
    )
    message_id: int
    address = fields.CharField(max_length=320)
    # The recipient's domain in ASCII (A-label) form: where the MX lookup starts.
    domain = fields.CharField(max_length=253)
    state = fields.CharField(max_length=16, default=RecipientState.PENDING.value)
    attempts = fields.IntField(default=0)
    # The last answer: the SMTP reply code (0 when none came, e.g. DNS failed),
    # its RFC 3463 enhanced status and the text, and the host that gave it.
    smtp_code = fields.IntField(default=0)
    status = fields.CharField(max_length=16, default="")
    diagnostic = fields.TextField(default="")
    remote_host = fields.CharField(max_length=255, default="")
    last_attempt_at = fields.DatetimeField(null=True)
    # When the sender was told it failed: the DSN of that attempt went out (or
    # NOTIFY asked for none). Set once, so a recipient is never bounced twice.
    bounced_at = fields.DatetimeField(null=True)
    # RFC 3461 from RCPT TO: NOTIFY as given ("FAILURE,DELAY", "NEVER"; "" not
    # given) and ORCPT decoded ("rfc822;a@b.example"; "" not given).
    dsn_notify = fields.CharField(max_length=32, default="", db_default="")
    dsn_orcpt = fields.CharField(max_length=500, default="", db_default="")

    class Meta:
        table = "outbound_recipients"
        unique_together = (("message", "address"),)


class MtaStsPolicyRecord(StoreModel):
    """The last valid MTA-STS policy of a recipient domain (RFC 8461 section 5.1 cache)."""

    id = fields.IntField(primary_key=True)
    domain = fields.CharField(max_length=253, unique=True)
    policy_id = fields.CharField(max_length=32)
    policy = fields.TextField()
    fetched_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()

    class Meta:
        table = "mta_sts_policies"
