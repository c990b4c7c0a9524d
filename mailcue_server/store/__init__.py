"""The persistence layer: Tortoise models and every query. Nothing else talks to the ORM."""
