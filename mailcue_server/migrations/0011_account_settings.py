"""Account and live-setting changes of the repair issue."""

from tortoise import migrations
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0010_deliverability")]

    initial = False

    # Nothing to change: the live settings are rows of the settings table.
    operations: list[ops.Operation] = []
