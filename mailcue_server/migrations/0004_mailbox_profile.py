"""Mailbox profile fields of the REST contract: the signature and the purpose."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0003_search_index")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Mailbox",
            name="purpose",
            field=fields.CharField(default="standard", db_default="standard", max_length=16),
        ),
        ops.AddField(
            model_name="Mailbox",
            name="signature",
            field=fields.TextField(default="", db_default="", unique=False),
        ),
    ]
