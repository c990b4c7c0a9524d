"""OpenPGP keys of mailboxes (filled in by the GPG work)."""
