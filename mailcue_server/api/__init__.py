"""The HTTP edge: app factory, GraphQL mount, docs, and error mapping."""
