"""Run-time settings kept in the database (JSON values by key).

Server-wide settings changed through ``PUT /system/settings`` live under the
``system.`` prefix. Those with a ``MAILCUE_*`` twin replace it when a node
starts (:func:`apply_saved`); the live ones among them also while it runs
(:func:`with_live`, applied by the settings-sync worker). Retention has no
twin and is read where it is used, each time (:func:`retention`), so every
node sharing the database follows a change at once.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from tortoise.transactions import in_transaction

from mailcue_server.config import Settings
from mailcue_server.store.credentials import SecretBox
from mailcue_server.store.models import Setting

log = logging.getLogger(__name__)

SYSTEM_PREFIX = "system."
# Saved values that replace the Settings field of the same name at start-up only:
# the greeting, Received headers and the self-signed certificate are made from them.
STARTUP_FIELDS = ("hostname", "domain")
# Saved values that also replace their Settings field while a node runs: the
# listeners read the size limit per connection, the SMTP sink the catch-all per
# recipient, the outbound queue its relay per delivery.
LIVE_FIELDS = (
    "max_message_size",
    "catch_all",
    "relay_host",
    "relay_port",
    "relay_tls",
    "relay_username",
    "relay_password",
    "outbound_ca_file",
)
# Saved sealed with the server secret (:func:`settings_box`), never as plain text.
SEALED_FIELDS = frozenset({"relay_password"})
# Read at each use from the database; no Settings field behind them.
RETENTION_MAX_MESSAGES = "retention_max_messages"
RETENTION_MAX_AGE_DAYS = "retention_max_age_days"


# Tortoise's JSONField reads a str as JSON text to decode ("mx.example.com" is
# not JSON), so every value is stored inside a one-key object.
_WRAP = "value"


def _unwrap(stored: object) -> Any:
    return stored.get(_WRAP) if isinstance(stored, dict) else stored


async def get(key: str, default: Any = None) -> Any:
    row = await Setting.get_or_none(key=key)
    return default if row is None else _unwrap(row.value)


async def put(key: str, value: Any) -> None:
    """Save any JSON-serialisable value (None included) under ``key``."""
    await Setting.update_or_create(defaults={"value": {_WRAP: value}}, key=key)


async def saved_system() -> dict[str, Any]:
    """Every saved server-wide setting, by name (without the prefix)."""
    rows = await Setting.filter(key__startswith=SYSTEM_PREFIX)
    return {row.key.removeprefix(SYSTEM_PREFIX): _unwrap(row.value) for row in rows}


async def save_system(values: Mapping[str, Any]) -> None:
    """Save server-wide settings together: all of them, or none on failure."""
    async with in_transaction():
        for name, value in values.items():
            await put(SYSTEM_PREFIX + name, value)


@functools.cache
def _field_type(name: str) -> TypeAdapter[Any]:
    return TypeAdapter(Settings.model_fields[name].annotation or Any)


def settings_box(server_secret: str) -> SecretBox:
    """Seals and opens the saved values of :data:`SEALED_FIELDS`."""
    return SecretBox(server_secret, "system-settings")


def with_saved(
    settings: Settings,
    saved: Mapping[str, Any],
    fields: tuple[str, ...] = STARTUP_FIELDS + LIVE_FIELDS,
    *,
    box: SecretBox | None = None,
) -> Settings:
    """``settings`` with saved values in place of the ``MAILCUE_*`` ones (the same object
    when nothing differs, so a caller can tell whether anything changed). Sealed values
    are opened with ``box``; without it, or sealed under another secret, they are left out."""
    update: dict[str, Any] = {}
    for name in fields:
        if name not in saved:
            continue
        raw = saved[name]
        if name in SEALED_FIELDS:
            if box is None:
                continue
            try:
                raw = box.open(raw) if raw else ""
            except ValueError:
                log.error("saved %s was sealed with another secret key; ignoring it", name)
                continue
        # JSON gives "tls", the field holds RelayTls.TLS: read it as the field's type.
        value = _field_type(name).validate_python(raw)
        if value != getattr(settings, name):
            update[name] = value
    return settings.model_copy(update=update) if update else settings


def with_live(settings: Settings, saved: Mapping[str, Any], box: SecretBox) -> Settings:
    """``settings`` with the saved live fields: what a running node takes over."""
    return with_saved(settings, saved, LIVE_FIELDS, box=box)


async def apply_saved(settings: Settings, box: SecretBox) -> Settings:
    """The settings a node starts with: the environment's, then what the API saved.

    A value saved through the API wins over ``MAILCUE_*``, so a change made
    from the web UI survives restarts of every node sharing the database.
    """
    return with_saved(settings, await saved_system(), box=box)


@dataclass(frozen=True)
class Retention:
    """Global retention limits; None means no limit."""

    max_messages: int | None
    max_age_days: int | None


async def retention() -> Retention:
    """The global retention limits, as saved now (0 or unset means no limit)."""
    saved = await saved_system()
    messages = saved.get(RETENTION_MAX_MESSAGES) or None
    days = saved.get(RETENTION_MAX_AGE_DAYS) or None
    return Retention(
        max_messages=int(messages) if messages else None,
        max_age_days=int(days) if days else None,
    )
