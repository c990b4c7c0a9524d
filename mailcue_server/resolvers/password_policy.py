"""What a new password may not be: the one policy for user, mailbox and CLI passwords.

Length alone let ``password``, ``12345678`` and eight spaces through. Following
NIST SP 800-63B section 3.1.1.2 we add no composition rules (a long passphrase
of lowercase words is fine) but refuse what guessers try first: blank and
near-blank strings, keyboard and alphabet runs, repeated chunks, the most
common passwords (``common-passwords.txt``, also with digits or symbols around
them and letter swaps such as ``p@ssw0rd``), and the account's own names.

The bootstrap admin password (``MAILCUE_ADMIN_PASSWORD``) is the operator's
configuration, not a password a user sets, so it is not checked here; the
configuration refuses the default in production instead.
"""

from __future__ import annotations

import functools
from importlib import resources

from mailcue_server.errors import Invalid
from mailcue_server.store.users import MAX_PASSWORD_LENGTH

MIN_PASSWORD_LENGTH = 8
_COMMON_FILE = "common-passwords.txt"
MIN_DISTINCT_CHARACTERS = 4
# A common word is matched inside digits and symbols only when at least this long.
_MIN_STEM = 3

_RUNS = (
    "01234567890",
    "abcdefghijklmnopqrstuvwxyz",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "qwertzuiop",
    "azertyuiop",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "1q2w3e4r5t6y7u8i9o0p",
)
_SWAPS = str.maketrans({"@": "a", "4": "a", "0": "o", "1": "i", "!": "i", "3": "e", "$": "s",
                        "5": "s", "7": "t", "+": "t", "8": "b", "9": "g"})  # fmt: skip


@functools.cache
def common_passwords() -> frozenset[str]:
    """The bundled list, read once."""
    bundled = resources.files("mailcue_server.resolvers").joinpath(_COMMON_FILE)
    text = bundled.read_text("utf-8")
    return frozenset(
        line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


def _stem(lowered: str) -> str:
    """The password without the digits and symbols around its letters (``Summer2024!``)."""
    start, end = 0, len(lowered)
    while start < end and not lowered[start].isalpha():
        start += 1
    while end > start and not lowered[end - 1].isalpha():
        end -= 1
    return lowered[start:end]


def _forms(password: str) -> set[str]:
    """The spellings a guesser's list would cover: as typed, stemmed, with letter swaps."""
    lowered = password.lower()
    forms = {lowered, lowered.translate(_SWAPS)}
    for stem in (_stem(lowered), _stem(lowered).translate(_SWAPS)):
        if len(stem) >= _MIN_STEM:
            forms.add(stem)
    return forms


def _is_run(text: str) -> bool:
    """Part of a keyboard row or of the alphabet or digits, forwards or backwards."""
    return len(text) >= MIN_DISTINCT_CHARACTERS and any(
        text in run or text in run[::-1] for run in _RUNS
    )


def _is_repetition(text: str) -> bool:
    """``abcabcabc``, ``12341234``, ``passpass``: one chunk said again."""
    return len(text) > 1 and (text + text).find(text, 1) < len(text)


def _own_names(names: tuple[str, ...]) -> set[str]:
    """The account's names, for addresses their local parts, and the stems of those."""
    found: set[str] = set()
    for name in names:
        lowered = name.strip().lower()
        for candidate in (lowered, lowered.partition("@")[0]):
            found.update(c for c in (candidate, _stem(candidate)) if len(c) >= _MIN_STEM)
    return found


def check_password_policy(password: str, names: tuple[str, ...] = ()) -> None:
    """Refuse a password a user wants to set, with the reason.

    Args:
        password: The new password as typed.
        names: The username, email or mailbox address it protects; the
            password may not be one of them.

    Raises:
        Invalid: with a message saying what is wrong.
    """
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise Invalid(
            f"Password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long"
        )
    if not password.strip():
        raise Invalid("Password must not be only spaces")
    if len(set(password)) < MIN_DISTINCT_CHARACTERS:
        raise Invalid(f"Password must use at least {MIN_DISTINCT_CHARACTERS} different characters")
    forms = _forms(password)
    if forms & _own_names(names):
        raise Invalid("Password must not be the account's username or email address")
    if forms & common_passwords():
        raise Invalid("Password is one of the most common passwords; choose a less guessable one")
    lowered = password.lower()
    if _is_run(lowered) or _is_run(_stem(lowered)) or _is_repetition(lowered):
        raise Invalid(
            "Password must not be a keyboard or alphabet run or a repeated pattern "
            "(such as 12345678, qwertyui or abcabcabc)"
        )
