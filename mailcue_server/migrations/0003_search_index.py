"""Full-text search over messages: the ``body_text`` column and each engine's own index.

The first three operations are what ``mailcue makemigrations`` wrote for
the new ``Message.body_text`` field and for the wider ``(folder_id,
internal_date, uid, flags, has_attachments)`` index, which replaces
``(folder_id, internal_date)``: a listing, searched or not, reads its order
and its flag and attachment tests from that index alone (SQLite sorted every
row of the folder to break ties on the UID, and read each row for its flags).
The rest was added by hand, because the full-text index is not a model field
and each engine builds it differently:

- SQLite: an FTS5 table ``messages_fts`` whose content is the ``messages``
  table itself (``content='messages'``, so the text is not stored twice),
  kept in step by three triggers. The update trigger fires only when an
  indexed column is written, so flag changes don't touch the index. The
  folder is indexed too, as a word of its own column, so FTS5 alone can
  count a folder's matches (``store/search.py``).
- PostgreSQL: a stored generated ``tsvector`` column ``search_vector`` with
  a GIN index. The weights tell the fields apart in a query: A subject,
  B sender, C recipients (To and Cc), D body text.

Both split text into runs of letters and digits (PostgreSQL's parser would
keep ``alice@example.com`` whole; SQLite's ``unicode61`` splits it), fold
case and keep diacritics, so a query finds the same messages on either.
``store/search.py`` writes the queries.

Tortoise's ``RunSQL`` runs the same SQL on every engine, so the engine
specific statements go through :class:`SqlPerEngine`, an operation that
picks its statements by the connection's dialect (and refuses any other
engine). Like ``RunSQL`` it runs them in the migration's transaction, and
when SQL is only collected (``MigrationExecutor.collect_sql``, behind
``sqlmigrate``) it lists the statements for the engine it is pointed at.
Neither it nor the ``RunPython`` backfill changes the migration state, so
the autodetector sees only the generated operations and
``mailcue makemigrations --check`` stays clean.

Messages stored before this migration get their ``body_text`` from their
raw bytes (:func:`fill_body_text`), before the index is built over them.

Two side effects on SQLite: the row count Tortoise reports for a DELETE of
messages (or an UPDATE of an indexed column) includes the rows the triggers
write (it measures ``total_changes``), so count first where the number
matters (``store.messages.purge_mailbox`` does); and migrating
back past this migration loses the table's other indexes, because
Tortoise's SQLite ``RemoveField`` rebuilds the table without them.
"""

from collections.abc import Mapping, Sequence

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops
from tortoise.migrations.schema_editor.base import BaseSchemaEditor
from tortoise.migrations.schema_generator.state import State
from tortoise.migrations.schema_generator.state_apps import StateApps

from mailcue_server.mail.index import index_message

BACKFILL_BATCH = 100

_FTS_COLUMNS = "folder_id, subject, from_name, from_addr, to_addrs, cc_addrs, body_text"
_NEW = ", ".join(f"new.{name}" for name in _FTS_COLUMNS.split(", "))
_OLD = ", ".join(f"old.{name}" for name in _FTS_COLUMNS.split(", "))

SQLITE_FORWARD = [
    f"""CREATE VIRTUAL TABLE messages_fts USING fts5(
        {_FTS_COLUMNS},
        content='messages', content_rowid='id', columnsize=0,
        tokenize='unicode61 remove_diacritics 0'
    )""",
    f"""CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, {_FTS_COLUMNS}) VALUES (new.id, {_NEW});
    END""",
    f"""CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, {_FTS_COLUMNS})
        VALUES ('delete', old.id, {_OLD});
    END""",
    f"""CREATE TRIGGER messages_fts_update AFTER UPDATE OF {_FTS_COLUMNS} ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, {_FTS_COLUMNS})
        VALUES ('delete', old.id, {_OLD});
        INSERT INTO messages_fts(rowid, {_FTS_COLUMNS}) VALUES (new.id, {_NEW});
    END""",
    "INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER messages_fts_update",
    "DROP TRIGGER messages_fts_delete",
    "DROP TRIGGER messages_fts_insert",
    "DROP TABLE messages_fts",
]


def _words(text: str) -> str:
    """SQL for ``text`` split into runs of letters and digits, as ``unicode61`` does."""
    return f"to_tsvector('simple', regexp_replace({text}, '[^[:alnum:]]+', ' ', 'g'))"


POSTGRES_FORWARD = [
    f"""ALTER TABLE messages ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
        setweight({_words("subject")}, 'A')
        || setweight({_words("from_name || ' ' || from_addr")}, 'B')
        || setweight({_words("to_addrs::text || ' ' || cc_addrs::text")}, 'C')
        || setweight({_words("body_text")}, 'D')
    ) STORED""",
    "CREATE INDEX messages_search_vector ON messages USING GIN (search_vector)",
]
POSTGRES_BACKWARD = [
    "DROP INDEX messages_search_vector",
    "ALTER TABLE messages DROP COLUMN search_vector",
]


class SqlPerEngine(ops.TortoiseOperation):
    """Raw SQL chosen by the connection's dialect (``sqlite``, ``postgres``).

    Args:
        forward: Statements to apply, by dialect.
        backward: Statements that undo them, by dialect.
    """

    reduces_to_sql = True

    def __init__(
        self, forward: Mapping[str, Sequence[str]], backward: Mapping[str, Sequence[str]]
    ) -> None:
        self.forward = forward
        self.backward = backward

    def describe(self) -> str:
        return f"Run SQL for {' or '.join(sorted(self.forward))}"

    async def database_forward(
        self,
        app_label: str,
        old_state: State,
        new_state: State,
        state_editor: BaseSchemaEditor | None = None,
    ) -> None:
        if state_editor is not None:
            await self._run(state_editor, self.forward)

    async def database_backward(
        self,
        app_label: str,
        old_state: State,
        new_state: State,
        state_editor: BaseSchemaEditor | None = None,
    ) -> None:
        if state_editor is not None:
            await self._run(state_editor, self.backward)

    @staticmethod
    async def _run(editor: BaseSchemaEditor, statements: Mapping[str, Sequence[str]]) -> None:
        dialect = editor.client.capabilities.dialect
        if dialect not in statements:
            raise NotImplementedError(f"no full-text search index for the {dialect!r} engine")
        for sql in statements[dialect]:
            if editor.collect_sql:
                editor.collected_sql.append(sql)
            else:
                # One statement per call: the SQLite editor's own ``_run_sql`` splits
                # its input at every ";", which would cut a trigger's body apart.
                await editor.client.execute_query(sql)


async def fill_body_text(apps: StateApps, schema_editor: BaseSchemaEditor) -> None:
    """Index the text of the messages stored before this migration.

    Runs inside the migration's transaction, in batches of
    :data:`BACKFILL_BATCH` messages.
    """
    client = schema_editor.client
    first, second = ("?", "?") if client.capabilities.dialect == "sqlite" else ("$1", "$2")
    select = f"SELECT id, raw FROM messages WHERE id > {first} ORDER BY id LIMIT {BACKFILL_BATCH}"
    update = f"UPDATE messages SET body_text = {first} WHERE id = {second}"
    last = 0
    while rows := await client.execute_query_dict(select, [last]):
        texts = [[index_message(bytes(row["raw"])).body_text, row["id"]] for row in rows]
        if filled := [values for values in texts if values[0]]:
            await client.execute_many(update, filled)
        last = int(rows[-1]["id"])


class Migration(migrations.Migration):
    dependencies = [("mailcue", "0002_mail_store")]

    initial = False

    operations = [
        ops.AddField(
            model_name="Message",
            name="body_text",
            field=fields.TextField(default="", db_default="", unique=False),
        ),
        ops.RemoveIndex(
            model_name="Message",
            name=None,
            fields=["folder_id", "internal_date"],
        ),
        ops.AddIndex(
            model_name="Message",
            index=Index(fields=["folder_id", "internal_date", "uid", "flags", "has_attachments"]),
        ),
        ops.RunPython(fill_body_text, ops.RunPython.noop),
        SqlPerEngine(
            forward={"sqlite": SQLITE_FORWARD, "postgres": POSTGRES_FORWARD},
            backward={"sqlite": SQLITE_BACKWARD, "postgres": POSTGRES_BACKWARD},
        ),
    ]
