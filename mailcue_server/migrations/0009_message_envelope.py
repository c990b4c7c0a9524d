"""The SMTP envelope kept with each message."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0008_mailbox_retention")]

    initial = False

    operations = []
