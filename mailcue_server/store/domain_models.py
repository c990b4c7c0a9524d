"""Tortoise models of managed domains (with their DKIM keys and DNS check results) and aliases.

Only ``store/`` imports this module. Both tables use integer ids because the
REST contract's ``Domain.id`` and ``Alias.id`` are integers.
"""

from __future__ import annotations

from typing import Any

from tortoise import fields

from mailcue_server.store.model_base import StoreModel


class Domain(StoreModel):
    """A mail domain this server answers for, signs for and publishes an MTA-STS policy for."""

    id = fields.IntField(primary_key=True)
    # The ASCII (A-label) form, lowercased, without a trailing dot.
    name = fields.CharField(max_length=253, unique=True)
    is_active = fields.BooleanField(default=True)
    dkim_selector = fields.CharField(max_length=63)
    # The DNS ``k=`` tag: "rsa" or "ed25519".
    dkim_key_type = fields.CharField(max_length=16)
    # PEM sealed with a SecretBox derived from the server secret (store/credentials.py).
    dkim_private_key = fields.TextField()
    # The base64 ``p=`` value published in DNS.
    dkim_public_key = fields.TextField()
    # RFC 8461 section 3.2: "enforce", "testing" or "none".
    mta_sts_mode = fields.CharField(max_length=16, default="testing")
    mta_sts_max_age = fields.IntField(default=604800)
    mx_verified = fields.BooleanField(default=False)
    spf_verified = fields.BooleanField(default=False)
    dkim_verified = fields.BooleanField(default=False)
    dmarc_verified = fields.BooleanField(default=False)
    mta_sts_verified = fields.BooleanField(default=False)
    tls_rpt_verified = fields.BooleanField(default=False)
    # Per record key: what was expected and found at the last check (store/domains.py).
    dns_results: dict[str, Any] = fields.JSONField(default=dict)
    last_dns_check = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "domains"


class Alias(StoreModel):
    """Mail for ``source`` (an address, or ``@domain``: a catch-all) goes to ``destinations``."""

    id = fields.IntField(primary_key=True)
    # Lowercased; "@example.com" is the catch-all of example.com.
    source = fields.CharField(max_length=320, unique=True)
    domain = fields.CharField(max_length=253, db_index=True)
    destinations: list[str] = fields.JSONField(default=list)
    enabled = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "aliases"

    @property
    def is_catchall(self) -> bool:
        return self.source.startswith("@")
