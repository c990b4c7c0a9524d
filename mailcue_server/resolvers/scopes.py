"""The API key scope catalog: every ``resource:action`` permission, defined once.

``*`` (full access) holds every scope except the ``explicit`` ones, which a key
holds only when granted by name: ``account:security`` changes how the owner
signs in, so a leaked everyday key must not be able to lock its owner out.
"""

from __future__ import annotations

from dataclasses import dataclass

FULL_ACCESS = "*"
ACCOUNT_SECURITY = "account:security"


@dataclass(frozen=True)
class Scope:
    value: str
    group: str
    label: str
    description: str
    admin_only: bool = False
    # Never implied by FULL_ACCESS: granted by name only.
    explicit: bool = False


CATALOG: tuple[Scope, ...] = (
    Scope(
        "email:read", "Emails", "Read emails", "List, search and read emails, raw and attachments."
    ),
    Scope("email:send", "Emails", "Send emails", "Send email through the server."),
    Scope(
        "email:write",
        "Emails",
        "Inject and flag emails",
        "Inject emails, change flags, record delivery outcomes and bounces.",
    ),
    Scope("email:delete", "Emails", "Delete emails", "Delete emails and purge mailboxes."),
    Scope("mailbox:read", "Mailboxes", "Read mailboxes", "List mailboxes and folder statistics."),
    Scope(
        "mailbox:write", "Mailboxes", "Manage mailboxes", "Create, change and delete mailboxes."
    ),
    Scope("gpg:read", "GPG", "Read GPG keys", "List and export public keys."),
    Scope("gpg:write", "GPG", "Manage GPG keys", "Generate, import, publish and delete keys."),
    Scope("events:read", "Events", "Live events", "Receive events over SSE and GraphQL."),
    Scope("apikey:manage", "Account", "Manage API keys", "Create, change and revoke API keys."),
    Scope(
        ACCOUNT_SECURITY,
        "Account",
        "Account security",
        "Change the owner's password and two-factor (TOTP) settings, which signs other "
        "sessions out. Granted by name only: full access (*) does not include it, and only "
        "a password login or a key holding it can grant it.",
        explicit=True,
    ),
    Scope("user:manage", "Account", "Manage users", "Register users and reset passwords.", True),
    Scope("alias:read", "Aliases", "Read aliases", "List aliases.", True),
    Scope("alias:write", "Aliases", "Manage aliases", "Create, change and delete aliases.", True),
    Scope("domain:read", "Domains", "Read domains", "List domains and their DNS records.", True),
    Scope("domain:write", "Domains", "Manage domains", "Add, verify and remove domains.", True),
    Scope("system:read", "System", "Read system settings", "Settings, TLS, readiness.", True),
    Scope("system:write", "System", "Change system settings", "Settings and TLS upload.", True),
)

BY_VALUE = {scope.value: scope for scope in CATALOG}
