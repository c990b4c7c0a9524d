"""Running a parsed search (``mail/search_query.py``) over one folder.

Text terms go to the engine's full-text index, which
``migrations/0003_search_index.py`` creates: the FTS5 table ``messages_fts``
on SQLite, the GIN-indexed ``search_vector`` column on PostgreSQL. The order,
the flags and the attachment mark come from the ``(folder_id, internal_date,
uid, flags, has_attachments)`` index of ``messages``; dates are a range on it.

PostgreSQL's planner picks between its indexes from statistics. SQLite's
can't see how many rows a full-text match yields, so the store counts them
first (FTS5 alone does that: the folder is indexed there too) and picks:

- few matches: fetch them by id and sort them (cost grows with the matches);
- more: walk the folder's index in order, keeping the ids the match listed
  (a page stops early, but a count walks the whole folder).

Where they cross depends on whether the total needs the rows too (flags,
dates, attachments): see :data:`TEXT_FIRST_MAX`.

Tortoise has no full-text lookup, so one page's ids come from raw SQL, and
the rows are then loaded through the model, without raw bytes or search text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from mailcue_server.mail.search_query import Flag, Scope, SearchQuery, Term
from mailcue_server.store.mail_models import LISTED_FIELDS, Message, SystemFlag

TEXT_FIRST_MAX = 500
"""Most SQLite matches fetched by id when FTS5's count is the total and only a page is read.

Measured on 100,000 messages in one folder (2 cores, loaded): the two ways
cross near 500 matches, 5 ms each.
"""
TEXT_FIRST_MAX_COUNTED = 5000
"""The same when the total needs the rows' flags, dates or attachment mark: near 5,000, 35 ms."""

_SYSTEM_FLAG = {
    Flag.SEEN: SystemFlag.SEEN,
    Flag.ANSWERED: SystemFlag.ANSWERED,
    Flag.FLAGGED: SystemFlag.FLAGGED,
    Flag.DRAFT: SystemFlag.DRAFT,
}
# FTS5 column filters (sqlite.org/fts5.html, section 3.6): "any" leaves out the folder column.
_FTS5_COLUMNS = {
    Scope.ANY: "{subject from_name from_addr to_addrs cc_addrs body_text}",
    Scope.FROM: "{from_name from_addr}",
    Scope.TO: "{to_addrs cc_addrs}",
    Scope.SUBJECT: "{subject}",
    Scope.BODY: "{body_text}",
}
# tsquery weight labels (PostgreSQL manual, section 12.3.2), as the migration weighs the fields.
_TS_WEIGHTS = {Scope.ANY: "", Scope.SUBJECT: "A", Scope.FROM: "B", Scope.TO: "C", Scope.BODY: "D"}


@dataclass(frozen=True, slots=True)
class Found:
    """One page of search results.

    Attributes:
        total: How many messages of the folder match.
        messages: The page, in the order asked for, without raw bytes or search text.
    """

    total: int
    messages: list[Message]


@dataclass(frozen=True, slots=True)
class Statement:
    """One SQL statement and its parameters."""

    sql: str
    values: list[Any]


@dataclass(frozen=True, slots=True)
class SearchSql:
    """The statements of one search (also for ``EXPLAIN`` in tests).

    Attributes:
        count: ``SELECT count(*) AS total ...`` over the folder.
        page: ``SELECT m.id ...``: one page of ids, in order.
        text_count: SQLite, when the query has words to find: ``SELECT count(*)
            AS total`` of the folder's full-text matches, from FTS5 alone.
        text_only: Nothing but the full-text match to test: ``text_count`` is the total.
    """

    count: Statement
    page: Statement
    text_count: Statement | None
    text_only: bool


async def search_folder(
    folder_id: int,
    query: SearchQuery,
    *,
    offset: int,
    limit: int,
    order: Sequence[str],
    before: tuple[datetime, int] | None = None,
) -> Found:
    """Find the messages of one folder that match ``query``.

    Args:
        folder_id: The folder.
        query: The parsed search.
        offset: Matches to skip.
        limit: Most matches to return.
        order: Model field names, ``-`` in front for descending (as Tortoise's ``order_by``).
        before: ``(internal_date, uid)``: the page holds only matches older than that
            message (a keyset page for ``order`` newest first); the total counts all.

    Returns:
        The number of matches and the page.
    """
    if query.matches_nothing:
        return Found(0, [])
    client = Message._meta.db
    sql = search_sql(
        client, folder_id, query, offset=offset, limit=limit, order=order, before=before
    )
    if sql.text_count is not None:
        matches = await _total(client, sql.text_count)
        if matches == 0:
            return Found(0, [])
        if matches <= (TEXT_FIRST_MAX if sql.text_only else TEXT_FIRST_MAX_COUNTED):
            sql = search_sql(
                client,
                folder_id,
                query,
                offset=offset,
                limit=limit,
                order=order,
                before=before,
                text_first=True,
            )
        total = matches if sql.text_only else await _total(client, sql.count)
    else:
        total = await _total(client, sql.count)
    if total <= offset or limit <= 0:
        return Found(total, [])
    rows = await client.execute_query_dict(sql.page.sql, sql.page.values)
    ids = [int(row["id"]) for row in rows]
    loaded = {m.id: m for m in await Message.filter(id__in=ids).only(*LISTED_FIELDS)}
    return Found(total, [loaded[i] for i in ids if i in loaded])


def search_sql(
    client: BaseDBAsyncClient,
    folder_id: int,
    query: SearchQuery,
    *,
    offset: int,
    limit: int,
    order: Sequence[str],
    before: tuple[datetime, int] | None = None,
    text_first: bool = False,
) -> SearchSql:
    """The statements of a search, for the engine behind ``client``.

    Args:
        client: The connection (its dialect decides the SQL).
        folder_id: The folder.
        query: The parsed search.
        offset: Matches to skip.
        limit: Most matches to return.
        order: As for :func:`search_folder`.
        before: As for :func:`search_folder` (the page only, not the count).
        text_first: SQLite: start from the full-text matches, not the folder's index.

    Raises:
        ValueError: ``order`` names something that is not a column.
    """
    params = _Params(client)
    match = _fts5_match(folder_id, query.terms) if params.sqlite else ""
    text_count = None
    if match and not all(term.negated for term in query.terms):
        text_count = Statement(
            "SELECT count(*) AS total FROM messages_fts WHERE messages_fts MATCH ?", [match]
        )
    if text_first and text_count is None:
        raise ValueError("text_first needs words to find, on SQLite")
    conditions = [] if text_first else [f"m.folder_id = {params.add(folder_id)}"]
    if match:
        negative = text_count is None
        conditions.append(
            f"m.id {'NOT IN' if negative else 'IN'} "  # noqa: S608 (a placeholder, not a value)
            f"(SELECT rowid FROM messages_fts WHERE messages_fts MATCH {params.add(match)})"
        )
    elif not params.sqlite:
        conditions += _tsquery_conditions(params, query.terms)
    others = _other_conditions(params, query)
    where = " AND ".join(conditions + others)
    count_values = list(params.values)
    # The text holds only placeholders and names from this module; values are parameters.
    count = f"SELECT count(*) AS total FROM messages AS m WHERE {where}"  # noqa: S608
    if before is not None:
        moment, uid = _instant(params, before[0]), before[1]
        where += (
            f" AND (m.internal_date < {params.add(moment)} OR "
            f"(m.internal_date = {params.add(moment)} AND m.uid < {params.add(uid)}))"
        )
    page = (
        f"SELECT m.id FROM messages AS m WHERE {where} "  # noqa: S608 (as above)
        f"ORDER BY {_order_by(order)} LIMIT {params.add(limit)} OFFSET {params.add(offset)}"
    )
    return SearchSql(
        count=Statement(count, count_values),
        page=Statement(page, list(params.values)),
        text_count=text_count,
        text_only=not others,
    )


async def _total(client: BaseDBAsyncClient, statement: Statement) -> int:
    rows = await client.execute_query_dict(statement.sql, statement.values)
    return int(rows[0]["total"])


class _Params:
    """Collects parameters and writes their placeholders in the engine's style."""

    def __init__(self, client: BaseDBAsyncClient) -> None:
        self.sqlite = client.capabilities.dialect == "sqlite"
        self.values: list[Any] = []

    def add(self, value: object) -> str:
        self.values.append(value)
        return "?" if self.sqlite else f"${len(self.values)}"


def _other_conditions(params: _Params, query: SearchQuery) -> list[str]:
    conditions = []
    if with_bits := _bits(query.with_flags):
        conditions.append(f"(m.flags & {params.add(with_bits)}) = {params.add(with_bits)}")
    if without_bits := _bits(query.without_flags):
        conditions.append(f"(m.flags & {params.add(without_bits)}) = 0")
    if query.has_attachment is not None:
        conditions.append(f"m.has_attachments = {params.add(query.has_attachment)}")
    if query.after is not None:
        conditions.append(f"m.internal_date >= {params.add(_instant(params, query.after))}")
    if query.before is not None:
        conditions.append(f"m.internal_date < {params.add(_instant(params, query.before))}")
    return conditions


def _fts5_match(folder_id: int, terms: Sequence[Term]) -> str:
    """The FTS5 query: the folder's word, the wanted terms, then ``NOT`` the unwanted.

    With only unwanted terms, the match lists what to leave out. FTS5's ``NOT``
    is binary (``a NOT b``), and the folder gives it a left side.
    """
    wanted = [_fts5(term) for term in terms if not term.negated]
    unwanted = [_fts5(term) for term in terms if term.negated]
    if not wanted and not unwanted:
        return ""
    folder = f'{{folder_id}} : "{folder_id}"'
    if not wanted:
        return f"{folder} AND ({' OR '.join(unwanted)})"
    match = " AND ".join([folder, *wanted])
    return f"({match}) NOT ({' OR '.join(unwanted)})" if unwanted else match


def _fts5(term: Term) -> str:
    """A term in FTS5 syntax; its words hold only letters and digits: nothing to escape."""
    return f'{_FTS5_COLUMNS[term.scope]} : "{" ".join(term.words)}"' + (
        " *" if term.prefix else ""
    )


def _tsquery_conditions(params: _Params, terms: Sequence[Term]) -> list[str]:
    wanted = [_tsquery(term) for term in terms if not term.negated]
    unwanted = [_tsquery(term) for term in terms if term.negated]
    conditions = []
    if wanted:
        value = params.add(" & ".join(wanted))
        conditions.append(f"m.search_vector @@ to_tsquery('simple', {value})")
    if unwanted:
        value = params.add(" | ".join(unwanted))
        conditions.append(f"NOT (m.search_vector @@ to_tsquery('simple', {value}))")
    return conditions


def _tsquery(term: Term) -> str:
    """A term in ``to_tsquery`` syntax; ``<->`` keeps its words adjacent and in order."""
    weight = _TS_WEIGHTS[term.scope]
    last = len(term.words) - 1
    parts = []
    for index, word in enumerate(term.words):
        label = ("*" if term.prefix and index == last else "") + weight
        parts.append(f"'{word}':{label}" if label else f"'{word}'")
    return "(" + " <-> ".join(parts) + ")"


def _bits(flags: frozenset[Flag]) -> int:
    bits = 0
    for flag in flags:
        bits |= _SYSTEM_FLAG[flag]
    return bits


def _instant(params: _Params, moment: datetime) -> object:
    """SQLite compares the text Tortoise stores (``isoformat(" ")``); PostgreSQL, timestamps."""
    return moment.isoformat(" ") if params.sqlite else moment


def _order_by(order: Sequence[str]) -> str:
    columns = Message._meta.fields_db_projection
    terms = []
    for name in order:
        column = columns.get(name.lstrip("-"))
        if column is None:
            raise ValueError(f"cannot order by {name!r}")
        terms.append(f'm."{column}" {"DESC" if name.startswith("-") else "ASC"}')
    return ", ".join(terms)
