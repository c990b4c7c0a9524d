"""Address rules: what counts as a valid mailbox address, and its canonical form.

A test mail server lives on names such as ``mailcue.local`` and
``example.test`` (RFC 6761/6762 special-use domains). email-validator refuses
those by default; its documented switch is the module-level
``SPECIAL_USE_DOMAIN_NAMES`` list, from which we drop the ones test setups use.
Deliverability (DNS) is a separate check, made by the validation resolver.
"""

from __future__ import annotations

import functools
from types import ModuleType

from mailcue_server.errors import Invalid

ALLOWED_SPECIAL_USE = ("local", "test", "invalid")


@functools.cache
def email_validator_module() -> ModuleType:
    """email-validator, configured; imported with the first address (it costs start-up 50 ms)."""
    import email_validator

    email_validator.SPECIAL_USE_DOMAIN_NAMES[:] = [
        name
        for name in email_validator.SPECIAL_USE_DOMAIN_NAMES
        if name not in ALLOWED_SPECIAL_USE
    ]
    return email_validator


def canonical_address(value: str) -> str:
    """Validate an address and return it with the domain lowercased.

    Raises:
        Invalid: the address is not syntactically valid.
    """
    try:
        return _canonical(value.strip())
    except email_validator_module().EmailNotValidError as exc:
        raise Invalid(f"Invalid email address '{value}': {exc}") from None


@functools.lru_cache(maxsize=4096)
def _canonical(address: str) -> str:
    """Pure, and on every SMTP ``RCPT`` (about 20 us a call), so remembered."""
    checked = email_validator_module().validate_email(
        address, check_deliverability=False, allow_smtputf8=True, test_environment=True
    )
    return f"{checked.local_part}@{checked.domain.lower()}"
