"""What a GraphQL document may cost before we run it: size, tokens, aliases, depth, fields.

A single anonymous 769 KB query of 20,000 aliases stalled HTTP and SMTP for
seconds. :class:`QueryLimits` refuses such documents in stages, each cheap
next to the one it saves: the length before anything, the token count
before parsing, then aliases, depth and fields on the parsed document before
validation and execution. A refused document gets one error whose
``extensions.code`` is :data:`QUERY_REJECTED` (the HTTP edge answers it with
400). Introspection, and validation's "Did you mean ...?" hints that reveal
the schema piece by piece, are for signed-in callers only.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from graphql import GraphQLError
from graphql.language import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    Lexer,
    OperationDefinitionNode,
    SelectionSetNode,
    Source,
    TokenKind,
)
from strawberry.extensions import SchemaExtension

from mailcue_server.schema.context import GraphQLContext

QUERY_REJECTED = "QUERY_REJECTED"

MAX_QUERY_CHARS = 64 * 1024
MAX_TOKENS = 5_000
MAX_ALIASES = 50
# Deep enough for the standard introspection query (its type references nest 9 levels).
MAX_DEPTH = 15
# Fields after fragments are expanded: what execution would walk at most per object.
MAX_FIELDS = 2_000

_INTROSPECTION_FIELDS = frozenset({"__schema", "__type"})
_SUGGESTION = re.compile(r" Did you mean .*\?$")


def rejected(message: str) -> GraphQLError:
    return GraphQLError(message, extensions={"code": QUERY_REJECTED})


def is_rejection(error: GraphQLError) -> bool:
    return (error.extensions or {}).get("code") == QUERY_REJECTED


def check_text(query: str) -> None:
    """Refuse a document by its length, then by its token count (lexing stops at the limit)."""
    if len(query) > MAX_QUERY_CHARS:
        raise rejected(f"The query is {len(query):,} characters; the limit is {MAX_QUERY_CHARS:,}")
    lexer = Lexer(Source(query))
    tokens = 0
    try:
        while lexer.advance().kind is not TokenKind.EOF:
            tokens += 1
            if tokens > MAX_TOKENS:
                raise rejected(f"The query has more than {MAX_TOKENS:,} tokens")
    except GraphQLError as exc:
        if is_rejection(exc):
            raise
        # A syntax error: the parser reports it with its location next.


@dataclass
class _Measure:
    """Aliases, deepest nesting and fields of one document, fragments expanded once each."""

    fragments: dict[str, FragmentDefinitionNode]
    aliases: int = 0
    introspects: bool = False
    # Fragment name -> (depth, fields) of its selection set; None while being measured.
    _done: dict[str, tuple[int, int] | None] = field(default_factory=dict)

    def selection_set(self, node: SelectionSetNode | None) -> tuple[int, int]:
        """(depth, fields) below ``node``."""
        if node is None:
            return 0, 0
        depth, fields = 0, 0
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                if selection.alias is not None:
                    self.aliases += 1
                if selection.name.value in _INTROSPECTION_FIELDS:
                    self.introspects = True
                below, count = self.selection_set(selection.selection_set)
                depth, fields = max(depth, below + 1), fields + count + 1
            elif isinstance(selection, InlineFragmentNode):
                below, count = self.selection_set(selection.selection_set)
                depth, fields = max(depth, below), fields + count
            elif isinstance(selection, FragmentSpreadNode):
                below, count = self.fragment(selection.name.value)
                depth, fields = max(depth, below), fields + count
            if fields > MAX_FIELDS or self.aliases > MAX_ALIASES:
                break  # already over: stop walking what would be refused anyway
        return depth, fields

    def fragment(self, name: str) -> tuple[int, int]:
        if name in self._done:
            return self._done[name] or (0, 0)  # a cycle: validation refuses it later
        definition = self.fragments.get(name)
        if definition is None:
            return 0, 0  # unknown: validation refuses it later
        self._done[name] = None
        self._done[name] = measured = self.selection_set(definition.selection_set)
        return measured


def check_document(document: DocumentNode, *, signed_in: bool) -> None:
    """Refuse a parsed document over the alias, depth or field limits, or one that
    introspects the schema without credentials."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    measure = _Measure(fragments)
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        depth, fields = measure.selection_set(definition.selection_set)
        if measure.aliases > MAX_ALIASES:
            raise rejected(f"The query has more than {MAX_ALIASES} aliases")
        if fields > MAX_FIELDS:
            raise rejected(f"The query selects more than {MAX_FIELDS:,} fields")
        if depth > MAX_DEPTH:
            raise rejected(f"The query nests {depth} levels deep; the limit is {MAX_DEPTH}")
    if measure.introspects and not signed_in:
        raise rejected("Introspection needs credentials (Authorization or X-API-Key)")


class QueryLimits(SchemaExtension):
    """Runs :func:`check_text` before parsing and :func:`check_document` before validation."""

    def on_operation(self) -> Iterator[None]:
        check_text(self.execution_context.query or "")
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        document = context.graphql_document
        signed_in = self._signed_in()
        if document is not None:
            try:
                check_document(document, signed_in=signed_in)
            except GraphQLError as exc:
                # Set before validation runs, so Strawberry skips it and executes nothing.
                context.pre_execution_errors = [exc]
        yield
        if not signed_in:
            for error in context.pre_execution_errors or ():
                error.message = _SUGGESTION.sub("", error.message)

    def _signed_in(self) -> bool:
        context = self.execution_context.context
        return isinstance(context, GraphQLContext) and context.ctx.principal is not None
