"""Until OpenPGP support lands, asking for it is refused before anything is built or sent."""

from __future__ import annotations

from mailcue_server.errors import Invalid


def refuse_pgp_until_available(*, sign: bool, encrypt: bool) -> None:
    """Raise a clear 400 for ``sign``/``encrypt`` (the GPG feature replaces this).

    Raises:
        Invalid: Either flag is set.
    """
    if sign or encrypt:
        raise Invalid("GPG signing and encryption are not available on this server yet")
