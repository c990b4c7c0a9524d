"""Managed domains with DKIM keys, and aliases."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0005_gpg_keys")]

    initial = False

    operations: list[object] = []
