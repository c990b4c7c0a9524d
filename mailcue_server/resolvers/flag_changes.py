"""Turning a flags request (``seen``, ``flagged``... and keywords) into IMAP flags to add
and to remove.

System flags are RFC 9051 section 2.3.2's; keywords are IMAP atoms (``$Label1``,
``$Forwarded``, ``NonJunk``) that IMAP clients show and set, so the ones set here
are the ones they see.
"""

from __future__ import annotations

import re

from mailcue_server.errors import Invalid
from mailcue_server.schema.types.emails import UpdateFlagsRequest

MAX_KEYWORDS = 50
MAX_KEYWORD_CHARS = 100
# An IMAP atom: printable ASCII without the atom-specials ( ) { SP % * " \\ ] (RFC 9051).
_KEYWORD = re.compile(r"[!#$&\'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+")
_SYSTEM = {
    "seen": "\\Seen",
    "flagged": "\\Flagged",
    "answered": "\\Answered",
    "draft": "\\Draft",
    "deleted": "\\Deleted",
}


def flag_changes(request: UpdateFlagsRequest) -> tuple[list[str], list[str]]:
    """The IMAP flags to add and to remove.

    Raises:
        Invalid: Nothing to change; a keyword that is not an atom, too long, or
            both added and removed; too many keywords.
    """
    add: list[str] = []
    remove: list[str] = []
    for field, flag in _SYSTEM.items():
        wanted: bool | None = getattr(request, field)
        if wanted is not None:
            (add if wanted else remove).append(flag)
    adding = _keywords(request.add_keywords, "add_keywords")
    removing = _keywords(request.remove_keywords, "remove_keywords")
    if both := sorted(set(adding) & set(removing)):
        raise Invalid(f"Keyword {both[0]!r} is both in add_keywords and remove_keywords")
    add += adding
    remove += removing
    if not add and not remove:
        choices = ", ".join([*_SYSTEM, "add_keywords", "remove_keywords"])
        raise Invalid(f"Nothing to change: give at least one of {choices}")
    return add, remove


def _keywords(values: list[str], field: str) -> list[str]:
    if len(values) > MAX_KEYWORDS:
        raise Invalid(f"{field}: at most {MAX_KEYWORDS} keywords")
    for value in values:
        if len(value) > MAX_KEYWORD_CHARS or not _KEYWORD.fullmatch(value):
            raise Invalid(
                f"{field}: {value[:MAX_KEYWORD_CHARS]!r} is not an IMAP keyword (1 to "
                f"{MAX_KEYWORD_CHARS} printable ASCII characters, no spaces, no "
                '( ) { % * " \\\\ ], not starting with \\\\)'
            )
    return list(dict.fromkeys(values))
