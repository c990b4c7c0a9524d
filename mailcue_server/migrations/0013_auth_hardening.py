"""Single-use two-factor logins: the last TOTP time step accepted per user, and the 2FA step
tokens (temp_token) already spent, shared by every node through the database."""

from tortoise import fields, migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0012_outbound_recipients")]

    initial = False

    operations = [
        ops.AddField(
            model_name="User",
            name="totp_last_step",
            field=fields.BigIntField(null=True),
        ),
        ops.CreateModel(
            name="SpentLoginStep",
            fields=[
                (
                    "jti",
                    fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64),
                ),
                (
                    "expires_at",
                    fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "spent_login_steps",
                "app": "mailcue",
                "pk_attr": "jti",
                "table_description": "A 2FA step token (``temp_token``) that finished a login: "
                "each works once.",
            },
            bases=["Model"],
        ),
    ]
