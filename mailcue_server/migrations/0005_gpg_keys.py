"""OpenPGP keys of mailboxes."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0004_mailbox_profile")]

    initial = False

    operations: list[object] = []
