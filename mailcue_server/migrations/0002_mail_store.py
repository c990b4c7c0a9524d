from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('mailcue', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Mailbox',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('address', fields.CharField(unique=True, max_length=320)),
                ('display_name', fields.CharField(default='', max_length=255)),
                ('password_hash', fields.CharField(null=True, max_length=255)),
                ('owner', fields.ForeignKeyField('mailcue.User', source_field='owner_id', null=True, db_constraint=True, to_field='id', related_name='mailboxes', on_delete=OnDelete.SET_NULL)),
                ('quota_bytes', fields.BigIntField(null=True)),
                ('last_uid_validity', fields.BigIntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'mailboxes', 'app': 'mailcue', 'pk_attr': 'id', 'table_description': 'An address that receives mail, with its IMAP/POP3/SMTP password.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Folder',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('mailbox', fields.ForeignKeyField('mailcue.Mailbox', source_field='mailbox_id', db_constraint=True, to_field='id', related_name='folders', on_delete=OnDelete.CASCADE)),
                ('name', fields.CharField(max_length=255)),
                ('special_use', fields.CharField(null=True, max_length=16)),
                ('subscribed', fields.BooleanField(default=True)),
                ('uid_validity', fields.BigIntField()),
                ('uid_next', fields.BigIntField(default=1)),
                ('highest_modseq', fields.BigIntField(default=1)),
                ('message_count', fields.IntField(default=0)),
                ('unseen_count', fields.IntField(default=0)),
                ('total_bytes', fields.BigIntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'folders', 'app': 'mailcue', 'unique_together': (('mailbox', 'name'),), 'pk_attr': 'id', 'table_description': 'An IMAP mailbox (RFC 9051 calls folders mailboxes) inside one of our mailboxes.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Message',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('folder', fields.ForeignKeyField('mailcue.Folder', source_field='folder_id', db_constraint=True, to_field='id', related_name='messages', on_delete=OnDelete.CASCADE)),
                ('uid', fields.BigIntField()),
                ('flags', fields.SmallIntField(default=0)),
                ('keywords', fields.TextField(default='', unique=False)),
                ('modseq', fields.BigIntField(default=1)),
                ('internal_date', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('size', fields.IntField()),
                ('message_id', fields.CharField(default='', max_length=255)),
                ('subject', fields.TextField(default='', unique=False)),
                ('from_addr', fields.TextField(default='', unique=False)),
                ('from_name', fields.TextField(default='', unique=False)),
                ('to_addrs', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('cc_addrs', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('date_header', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('in_reply_to', fields.TextField(null=True, unique=False)),
                ('references', fields.JSONField(default=list, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('thread_id', fields.CharField(default='', max_length=64)),
                ('has_attachments', fields.BooleanField(default=False)),
                ('preview', fields.TextField(default='', unique=False)),
                ('is_signed', fields.BooleanField(default=False)),
                ('is_encrypted', fields.BooleanField(default=False)),
                ('raw_bytes', fields.BinaryField(source_field='raw')),
            ],
            options={'table': 'messages', 'app': 'mailcue', 'unique_together': (('folder', 'uid'),), 'indexes': [Index(fields=['folder_id', 'internal_date']), Index(fields=['message_id'])], 'pk_attr': 'id', 'table_description': 'One stored message: its exact bytes plus the index fields lists and search need.'},
            bases=['Model'],
        ),
    ]
