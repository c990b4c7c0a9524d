"""The SMTP envelope kept with each message."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0008_mailbox_retention")]

    initial = False

    operations = [
        # NULL for mail stored by IMAP APPEND or inject, and for mail stored
        # before this migration: neither has an envelope to show.
        ops.AddField(
            model_name="Message",
            name="envelope",
            field=fields.JSONField(null=True),
        ),
    ]
