"""Tables of the deliverability routes: suppressed domains, send canaries, validation feedback.

Only ``store/`` imports this module. Everything here belongs to one user (the
tenant): one user's bounces never pause another user's sending, and one
user's canaries are invisible to the others.

- :class:`DeliveryOutcome`: what became of mail to an address (feedback, an
  ingested bounce), with the risk score issued for the address before it, so
  calibration can compare the two.
- :class:`ValidationScore`: the latest risk score issued to a user for an address.
- :class:`DomainSuppression`: a recipient domain paused after too many hard bounces.
- :class:`SendCanary` and :class:`SendCanaryRecipient`: a staged send.
"""

from __future__ import annotations

from enum import StrEnum
from uuid import UUID

from tortoise import fields
from tortoise.indexes import Index

from mailcue_server.store.model_base import StoreModel
from mailcue_server.store.models import User


class Outcome(StrEnum):
    """What mail to an address did: the contract's ``outcome`` values."""

    DELIVERED = "delivered"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"


class OutcomeSource(StrEnum):
    FEEDBACK = "feedback"  # POST /emails/validation-feedback
    BOUNCE = "bounce"  # a delivery status notification (POST /emails/bounces/ingest)


class CanaryStatus(StrEnum):
    PENDING = "pending"  # created, sample not sent yet
    PROBING = "probing"  # sample sent, waiting for bounces
    RELEASED = "released"
    BLOCKED = "blocked"
    CANCELLED = "cancelled"
    FAILED = "failed"  # the sample could not be sent at all


class RecipientRole(StrEnum):
    SAMPLE = "sample"
    HELD = "held"


class RecipientStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DELIVERED = "delivered"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    RELEASED = "released"
    BLOCKED = "blocked"
    SKIPPED = "skipped"


class DeliveryOutcome(StoreModel):
    """One observed result of mail to one address."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "mailcue.User", related_name="delivery_outcomes", on_delete=fields.CASCADE
    )
    address = fields.CharField(max_length=320)
    domain = fields.CharField(max_length=253)
    outcome = fields.CharField(max_length=16)
    smtp_code = fields.IntField(null=True)
    enhanced_status = fields.CharField(max_length=16, null=True)
    diagnostic = fields.TextField(default="")
    source = fields.CharField(max_length=16)
    # The risk score last issued to this user for the address before the outcome came.
    predicted_score = fields.FloatField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "delivery_outcomes"
        indexes = (
            Index(fields=["user_id", "domain", "created_at"]),
            Index(fields=["user_id", "address", "created_at"]),
        )


class ValidationScore(StoreModel):
    """The latest hard-bounce risk issued to a user for an address."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "mailcue.User", related_name="validation_scores", on_delete=fields.CASCADE
    )
    address = fields.CharField(max_length=320)
    score = fields.FloatField()
    scored_at = fields.DatetimeField()

    class Meta:
        table = "validation_scores"
        unique_together = (("user", "address"),)


class DomainSuppression(StoreModel):
    """A recipient domain a user's staged sends skip until ``expires_at``."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "mailcue.User", related_name="domain_suppressions", on_delete=fields.CASCADE
    )
    domain = fields.CharField(max_length=253)
    reason = fields.TextField(default="")
    hard_bounces = fields.IntField(default=0)
    observations = fields.IntField(default=0)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)

    class Meta:
        table = "domain_suppressions"
        unique_together = (("user", "domain"),)


class SendCanary(StoreModel):
    """A staged send: the message, its sample rule and where the decision stands."""

    id = fields.UUIDField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "mailcue.User", related_name="send_canaries", on_delete=fields.CASCADE
    )
    user_id: UUID
    name = fields.CharField(max_length=200, default="")
    status = fields.CharField(max_length=16, default=CanaryStatus.PENDING.value)
    sample_size = fields.IntField()
    hold_minutes = fields.IntField()
    bounce_threshold = fields.FloatField(default=0.0)
    auto_release = fields.BooleanField(default=True)
    from_address = fields.CharField(max_length=320)
    from_name = fields.CharField(max_length=200, default="")
    subject = fields.TextField(default="")
    body = fields.TextField(default="")
    body_type = fields.CharField(max_length=8, default="plain")
    reply_to = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    sample_sent_at = fields.DatetimeField(null=True)
    decision_due_at = fields.DatetimeField(null=True)
    decided_at = fields.DatetimeField(null=True)
    decision_reason = fields.TextField(null=True)

    class Meta:
        table = "send_canaries"
        indexes = (
            Index(fields=["user_id", "created_at"]),
            # The worker's query: probing canaries whose hold window has ended.
            Index(fields=["status", "decision_due_at"]),
        )


class SendCanaryRecipient(StoreModel):
    """One recipient of a staged send, in the order the caller gave them."""

    id = fields.BigIntField(primary_key=True)
    canary: fields.ForeignKeyRelation[SendCanary] = fields.ForeignKeyField(
        "mailcue.SendCanary", related_name="recipients", on_delete=fields.CASCADE
    )
    canary_id: UUID
    position = fields.IntField()
    email = fields.CharField(max_length=320)
    domain = fields.CharField(max_length=253)
    role = fields.CharField(max_length=8)
    status = fields.CharField(max_length=16, default=RecipientStatus.PENDING.value)
    risk_score = fields.FloatField(null=True)
    smtp_code = fields.IntField(null=True)
    enhanced_status = fields.CharField(max_length=16, null=True)
    sent_at = fields.DatetimeField(null=True)
    resolved_at = fields.DatetimeField(null=True)

    class Meta:
        table = "send_canary_recipients"
        indexes = (Index(fields=["email", "status"]),)
