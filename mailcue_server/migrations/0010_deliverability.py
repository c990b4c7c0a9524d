"""Suppressed domains, send canaries, validation feedback and ingested bounces."""

from tortoise import migrations


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0009_message_envelope")]

    initial = False

    operations = []
