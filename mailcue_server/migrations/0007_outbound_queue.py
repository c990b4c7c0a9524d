"""The outbound delivery queue (messages, per-recipient outcomes) and the MTA-STS policy cache."""

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.indexes import Index
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0006_domains_aliases")]

    initial = False

    operations = [
        ops.CreateModel(
            name="OutboundMessage",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("mail_from", fields.CharField(max_length=320)),
                ("raw_bytes", fields.BinaryField()),
                ("size", fields.IntField()),
                ("state", fields.CharField(default="queued", max_length=16)),
                ("attempts", fields.IntField(default=0)),
                ("next_attempt_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("lease_owner", fields.CharField(null=True, max_length=64)),
                (
                    "lease_until",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("last_error", fields.TextField(default="", unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "outbound_messages",
                "app": "mailcue",
                "indexes": [Index(fields=["state", "next_attempt_at"])],
                "pk_attr": "id",
                "table_description": "A message on its way out: exact bytes, envelope sender, "
                "schedule and lease.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="OutboundRecipient",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                (
                    "message",
                    fields.ForeignKeyField(
                        "mailcue.OutboundMessage",
                        source_field="message_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="recipients",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("address", fields.CharField(max_length=320)),
                ("domain", fields.CharField(max_length=253)),
                ("state", fields.CharField(default="pending", max_length=16)),
                ("attempts", fields.IntField(default=0)),
                ("smtp_code", fields.IntField(default=0)),
                ("status", fields.CharField(default="", max_length=16)),
                ("diagnostic", fields.TextField(default="", unique=False)),
                ("remote_host", fields.CharField(default="", max_length=255)),
                (
                    "last_attempt_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "outbound_recipients",
                "app": "mailcue",
                "unique_together": (("message", "address"),),
                "pk_attr": "id",
                "table_description": "One envelope recipient of a queued message and what "
                "became of it.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="MtaStsPolicyRecord",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("domain", fields.CharField(unique=True, max_length=253)),
                ("policy_id", fields.CharField(max_length=32)),
                ("policy", fields.TextField(unique=False)),
                ("fetched_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("expires_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "mta_sts_policies",
                "app": "mailcue",
                "pk_attr": "id",
                "table_description": "The last valid MTA-STS policy of a recipient domain "
                "(RFC 8461 section 5.1 cache).",
            },
            bases=["Model"],
        ),
    ]
