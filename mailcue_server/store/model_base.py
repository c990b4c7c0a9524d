"""The base of every table model: Tortoise's ``Model`` without reading our source at import.

Tortoise's model metaclass reads each model class's source file
(``inspect.getsource``) to turn ``#:`` comments into field descriptions. We
write none, and that reading was the largest single cost of importing the
store (about a tenth of a second for our tables, every start). Tortoise's
own migration-state models skip it with the ``_no_comments`` class
attribute; this metaclass sets it for ours.
"""

from __future__ import annotations

from typing import Any

from tortoise.models import Model, ModelMeta

__all__ = ["StoreModel"]


class _NoCommentsMeta(ModelMeta):
    def __new__(mcs, name: str, bases: tuple[type, ...], attrs: dict[str, Any]) -> Any:
        attrs.setdefault("_no_comments", True)
        return super().__new__(mcs, name, bases, attrs)


class StoreModel(Model, metaclass=_NoCommentsMeta):
    """Every MailCue table derives from this."""

    class Meta:
        abstract = True
