"""Suppressed domains, send canaries, validation feedback and ingested bounces."""

from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0009_message_envelope")]

    initial = False

    operations = [
        ops.CreateModel(
            name="DeliveryOutcome",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                (
                    "user",
                    fields.ForeignKeyField(
                        "mailcue.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="delivery_outcomes",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("address", fields.CharField(max_length=320)),
                ("domain", fields.CharField(max_length=253)),
                ("outcome", fields.CharField(max_length=16)),
                ("smtp_code", fields.IntField(null=True)),
                ("enhanced_status", fields.CharField(null=True, max_length=16)),
                ("diagnostic", fields.TextField(default="", unique=False)),
                ("source", fields.CharField(max_length=16)),
                ("predicted_score", fields.FloatField(null=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "delivery_outcomes",
                "app": "mailcue",
                "indexes": [
                    Index(fields=["user_id", "domain", "created_at"]),
                    Index(fields=["user_id", "address", "created_at"]),
                ],
                "pk_attr": "id",
                "table_description": "One observed result of mail to one address.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="DomainSuppression",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                (
                    "user",
                    fields.ForeignKeyField(
                        "mailcue.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="domain_suppressions",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("domain", fields.CharField(max_length=253)),
                ("reason", fields.TextField(default="", unique=False)),
                ("hard_bounces", fields.IntField(default=0)),
                ("observations", fields.IntField(default=0)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "expires_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "domain_suppressions",
                "app": "mailcue",
                "unique_together": (("user", "domain"),),
                "pk_attr": "id",
                "table_description": "A recipient domain a user's staged sends skip until "
                "``expires_at``.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="SendCanary",
            fields=[
                (
                    "id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                (
                    "user",
                    fields.ForeignKeyField(
                        "mailcue.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="send_canaries",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("name", fields.CharField(default="", max_length=200)),
                ("status", fields.CharField(default="pending", max_length=16)),
                ("sample_size", fields.IntField()),
                ("hold_minutes", fields.IntField()),
                ("bounce_threshold", fields.FloatField(default=0.0)),
                ("auto_release", fields.BooleanField(default=True)),
                ("from_address", fields.CharField(max_length=320)),
                ("from_name", fields.CharField(default="", max_length=200)),
                ("subject", fields.TextField(default="", unique=False)),
                ("body", fields.TextField(default="", unique=False)),
                ("body_type", fields.CharField(default="plain", max_length=8)),
                ("reply_to", fields.TextField(null=True, unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "sample_sent_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "decision_due_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "decided_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("decision_reason", fields.TextField(null=True, unique=False)),
            ],
            options={
                "table": "send_canaries",
                "app": "mailcue",
                "indexes": [
                    Index(fields=["user_id", "created_at"]),
                    Index(fields=["status", "decision_due_at"]),
                ],
                "pk_attr": "id",
                "table_description": "A staged send: the message, its sample rule and where "
                "the decision stands.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="SendCanaryRecipient",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                (
                    "canary",
                    fields.ForeignKeyField(
                        "mailcue.SendCanary",
                        source_field="canary_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="recipients",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("position", fields.IntField()),
                ("email", fields.CharField(max_length=320)),
                ("domain", fields.CharField(max_length=253)),
                ("role", fields.CharField(max_length=8)),
                ("status", fields.CharField(default="pending", max_length=16)),
                ("risk_score", fields.FloatField(null=True)),
                ("smtp_code", fields.IntField(null=True)),
                ("enhanced_status", fields.CharField(null=True, max_length=16)),
                (
                    "sent_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                (
                    "resolved_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "send_canary_recipients",
                "app": "mailcue",
                "indexes": [Index(fields=["email", "status"])],
                "pk_attr": "id",
                "table_description": "One recipient of a staged send, in the order the "
                "caller gave them.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="ValidationScore",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                (
                    "user",
                    fields.ForeignKeyField(
                        "mailcue.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="validation_scores",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("address", fields.CharField(max_length=320)),
                ("score", fields.FloatField()),
                ("scored_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "validation_scores",
                "app": "mailcue",
                "unique_together": (("user", "address"),),
                "pk_attr": "id",
                "table_description": "The latest hard-bounce risk issued to a user for an "
                "address.",
            },
            bases=["Model"],
        ),
    ]
