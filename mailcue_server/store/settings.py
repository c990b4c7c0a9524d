"""Run-time settings kept in the database (JSON values by key)."""

from __future__ import annotations

from typing import Any

from mailcue_server.store.models import Setting


async def get(key: str, default: Any = None) -> Any:
    row = await Setting.get_or_none(key=key)
    return default if row is None else row.value


async def put(key: str, value: Any) -> None:
    await Setting.update_or_create(defaults={"value": value}, key=key)
