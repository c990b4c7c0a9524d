"""Outbound queue: per-recipient outcomes."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0011_account_settings")]

    initial = False

    operations = []
