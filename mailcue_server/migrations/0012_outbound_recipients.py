"""Outbound queue: per-recipient bounce time and RFC 3461 parameters (NOTIFY, ORCPT), and the
message's RET and ENVID, so each attempt bounces what failed in it, once, as the sender asked."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0011_account_settings")]

    initial = False

    operations = [
        ops.AddField(
            model_name="OutboundMessage",
            name="dsn_ret",
            field=fields.CharField(default="", db_default="", max_length=4),
        ),
        ops.AddField(
            model_name="OutboundMessage",
            name="dsn_envid",
            field=fields.CharField(default="", db_default="", max_length=100),
        ),
        ops.AddField(
            model_name="OutboundRecipient",
            name="bounced_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="OutboundRecipient",
            name="dsn_notify",
            field=fields.CharField(default="", db_default="", max_length=32),
        ),
        ops.AddField(
            model_name="OutboundRecipient",
            name="dsn_orcpt",
            field=fields.CharField(default="", db_default="", max_length=500),
        ),
    ]
