"""Schema migrations (Tortoise ORM built-in migrations; one history for SQLite and PostgreSQL)."""
