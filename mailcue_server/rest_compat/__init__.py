"""The REST compatibility layer: /api/v1 routes of the original MailCue, onto the resolvers."""
