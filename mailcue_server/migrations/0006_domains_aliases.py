"""Managed domains with DKIM keys and DNS check results, and aliases."""

import functools
from json import dumps, loads

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

_compact_json = functools.partial(dumps, separators=(",", ":"))


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0005_gpg_keys")]

    initial = False

    operations = [
        ops.CreateModel(
            name="Domain",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("name", fields.CharField(unique=True, max_length=253)),
                ("is_active", fields.BooleanField(default=True)),
                ("dkim_selector", fields.CharField(max_length=63)),
                ("dkim_key_type", fields.CharField(max_length=16)),
                ("dkim_private_key", fields.TextField(unique=False)),
                ("dkim_public_key", fields.TextField(unique=False)),
                ("mta_sts_mode", fields.CharField(default="testing", max_length=16)),
                ("mta_sts_max_age", fields.IntField(default=604800)),
                ("mx_verified", fields.BooleanField(default=False)),
                ("spf_verified", fields.BooleanField(default=False)),
                ("dkim_verified", fields.BooleanField(default=False)),
                ("dmarc_verified", fields.BooleanField(default=False)),
                ("mta_sts_verified", fields.BooleanField(default=False)),
                ("tls_rpt_verified", fields.BooleanField(default=False)),
                ("dns_results", fields.JSONField(default=dict, encoder=_compact_json, decoder=loads)),
                ("last_dns_check", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "domains",
                "app": "mailcue",
                "pk_attr": "id",
                "table_description": "A mail domain this server answers for, signs for and "
                "publishes an MTA-STS policy for.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="Alias",
            fields=[
                ("id", fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ("source", fields.CharField(unique=True, max_length=320)),
                ("domain", fields.CharField(db_index=True, max_length=253)),
                ("destinations", fields.JSONField(default=list, encoder=_compact_json, decoder=loads)),
                ("enabled", fields.BooleanField(default=True)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ("updated_at", fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={
                "table": "aliases",
                "app": "mailcue",
                "pk_attr": "id",
                "table_description": "Mail for ``source`` (an address, or ``@domain``: a "
                "catch-all) goes to ``destinations``.",
            },
            bases=["Model"],
        ),
    ]
