"""Per-mailbox retention limits: None follows the server-wide setting, 0 means no limit."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0007_outbound_queue")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Mailbox",
            name="retention_max_messages",
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name="Mailbox",
            name="retention_max_age_days",
            field=fields.IntField(null=True),
        ),
    ]
