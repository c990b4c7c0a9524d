"""The Schema object: every area's Query and Mutation pieces merged in one place."""

from __future__ import annotations

import strawberry
from graphql import (
    GraphQLDefaultInput,
    GraphQLError,
    GraphQLInputObjectType,
    GraphQLSchema,
)
from graphql.language import ConstObjectFieldNode, ConstObjectValueNode, NameNode, StringValueNode
from strawberry.extensions import MaskErrors
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext
from strawberry.utils.logging import StrawberryLogger

from mailcue_server.errors import MailcueError
from mailcue_server.schema.aliases import AliasMutation, AliasQuery
from mailcue_server.schema.auth import AuthMutation, AuthQuery
from mailcue_server.schema.deliverability import DeliverabilityMutation, DeliverabilityQuery
from mailcue_server.schema.domains import DomainMutation, DomainQuery
from mailcue_server.schema.emails import EmailsMutation, EmailsQuery
from mailcue_server.schema.events import EventsSubscription
from mailcue_server.schema.gpg import GpgMutation, GpgQuery
from mailcue_server.schema.limits import QueryLimits
from mailcue_server.schema.mailboxes import MailboxesMutation, MailboxesQuery
from mailcue_server.schema.outbound_queue import OutboundQueueMutation, OutboundQueueQuery
from mailcue_server.schema.send_canaries import SendCanaryMutation, SendCanaryQuery
from mailcue_server.schema.sending import SendingMutation
from mailcue_server.schema.system import SystemMutation, SystemQuery
from mailcue_server.schema.types.common import SCALARS
from mailcue_server.schema.validation import ValidationQuery

Query = merge_types(
    "Query",
    (
        SystemQuery,
        AuthQuery,
        EmailsQuery,
        MailboxesQuery,
        ValidationQuery,
        DeliverabilityQuery,
        SendCanaryQuery,
        DomainQuery,
        AliasQuery,
        GpgQuery,
        OutboundQueueQuery,
    ),
)
Mutation = merge_types(
    "Mutation",
    (
        AuthMutation,
        EmailsMutation,
        MailboxesMutation,
        SendingMutation,
        DeliverabilityMutation,
        SendCanaryMutation,
        SystemMutation,
        DomainMutation,
        AliasMutation,
        GpgMutation,
        OutboundQueueMutation,
    ),
)
Subscription = merge_types("Subscription", (EventsSubscription,))


def is_unexpected(error: GraphQLError) -> bool:
    """True for failures that are bugs: anything but domain and GraphQL errors.

    An error with no original exception is GraphQL's own (parse, validation,
    variable types): the client needs its message.
    """
    original = error.original_error
    return original is not None and not isinstance(original, MailcueError | GraphQLError)


class MailcueSchema(strawberry.Schema):
    """Logs only unexpected errors, with their traceback; expected ones are answers."""

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        for error in errors:
            if is_unexpected(error):
                StrawberryLogger.error(error, execution_context)


def _object_defaults_as_literals(schema: GraphQLSchema) -> None:
    """Give input fields whose default is an object (``headers: StringMap = {}``) that
    default as a literal.

    Introspection writes defaults through graphql-core's ``ast_from_value``,
    which cannot turn an object of a custom scalar into a literal: every
    signed-in introspection (GraphiQL's first request) got an error for them.
    """
    for graphql_type in schema.type_map.values():
        if not isinstance(graphql_type, GraphQLInputObjectType):
            continue
        for input_field in graphql_type.fields.values():
            default = input_field.default_value
            if isinstance(default, dict):
                literal = ConstObjectValueNode(
                    fields=tuple(
                        ConstObjectFieldNode(
                            name=NameNode(value=str(name)), value=StringValueNode(value=str(value))
                        )
                        for name, value in default.items()
                    )
                )
                # Read first by introspection and coercion; default_value stays for the
                # SDL printer.
                input_field.default = GraphQLDefaultInput(literal=literal)


def build_schema() -> strawberry.Schema:
    schema = MailcueSchema(
        config=StrawberryConfig(scalar_map=SCALARS),
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # Masking runs before process_errors sees the list, so log-worthy errors
        # are told apart by the same predicate on both sides.
        extensions=[QueryLimits, lambda: MaskErrors(should_mask_error=is_unexpected)],
    )
    _object_defaults_as_literals(schema._schema)
    return schema
