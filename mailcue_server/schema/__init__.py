"""The GraphQL schema: root Query/Mutation/Subscription fields over the resolvers."""
