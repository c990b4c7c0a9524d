"""Account and live-setting changes of the repair issue."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0010_deliverability")]

    initial = False

    operations = []
