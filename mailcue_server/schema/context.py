"""The GraphQL context: Strawberry's BaseContext wrapping our plain resolver Context."""

from __future__ import annotations

from typing import TypeAlias

import strawberry
from strawberry.fastapi import BaseContext

from mailcue_server.resolvers.context import Context
from mailcue_server.schema.loaders import Loaders


class GraphQLContext(BaseContext):
    """Built per request (or WebSocket connection) by the HTTP edge."""

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx
        self.loaders = Loaders(ctx)


Info: TypeAlias = strawberry.Info[GraphQLContext, None]
