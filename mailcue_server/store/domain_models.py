"""Managed domains and aliases (filled in by the domains work)."""
