"""OpenPGP keys of mailboxes (and public keys of outside correspondents)."""

from uuid import uuid4

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops
from tortoise.migrations.operations import Operation


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0004_mailbox_profile")]

    initial = False

    operations: list[Operation] = [
        ops.CreateModel(
            name="GpgKey",
            fields=[
                (
                    "id",
                    fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True),
                ),
                ("slot", fields.CharField(unique=True, max_length=400)),
                ("address", fields.CharField(db_index=True, max_length=320)),
                (
                    "mailbox",
                    fields.ForeignKeyField(
                        "mailcue.Mailbox",
                        source_field="mailbox_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="gpg_keys",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "owner",
                    fields.ForeignKeyField(
                        "mailcue.User",
                        source_field="owner_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="gpg_keys",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("fingerprint", fields.CharField(max_length=64)),
                ("key_id", fields.CharField(max_length=16)),
                ("key_ids", fields.TextField(unique=False)),
                ("uid_name", fields.CharField(null=True, max_length=255)),
                ("uid_email", fields.CharField(null=True, max_length=320)),
                ("algorithm", fields.CharField(max_length=32)),
                ("key_length", fields.IntField(null=True)),
                ("key_created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "expires_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
                ("public_key", fields.TextField(unique=False)),
                ("sealed_private_key", fields.TextField(null=True, unique=False)),
                ("is_active", fields.BooleanField(default=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={
                "table": "gpg_keys",
                "app": "mailcue",
                "pk_attr": "id",
                "table_description": "One OpenPGP key: its public armor, its sealed private "
                "armor, and what it says of itself.",
            },
            bases=["Model"],
        ),
    ]
