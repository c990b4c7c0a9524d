"""Alias expansion, the function SMTP delivery calls, on both engines.

Precedence (exact alias, then mailbox, then catch-all), transitive chains,
"keep a copy" self-references, disabled aliases, and loops: refused when an
alias is saved, cut off (and reported) if they appear anyway.
"""

from __future__ import annotations

import re
from pathlib import Path
from uuid import uuid4

import pytest
import pytest_asyncio

from mailcue_server.app import build_services
from mailcue_server.config import load_settings
from mailcue_server.errors import Conflict, Invalid
from mailcue_server.events.memory import MemoryBus
from mailcue_server.mail.dkim import DkimKeyType
from mailcue_server.mail.dns_records import MtaStsMode
from mailcue_server.resolvers import aliases as alias_resolvers
from mailcue_server.resolvers.context import Context, Principal
from mailcue_server.schema.types.aliases import AliasCreateRequest
from mailcue_server.store import aliases, domains, mailboxes
from mailcue_server.store.aliases import ExpandedRecipients, expand_recipients
from mailcue_server.store.db import Database
from mailcue_server.store.domain_models import Alias, Domain

pytest_plugins = ["mail_db"]  # the parametrised ``db`` fixture (tests/store/mail_db.py)


@pytest_asyncio.fixture(autouse=True)
async def no_aliases(db: Database) -> None:
    """PostgreSQL keeps one database per module and mail_db empties only the mail tables."""
    await Alias.all().delete()
    await Domain.all().delete()


async def alias(source: str, *destinations: str, enabled: bool = True) -> Alias:
    return await aliases.create_alias(
        aliases.parse_source(source),
        aliases.parse_destinations(",".join(destinations)),
        enabled=enabled,
    )


async def test_without_aliases_recipients_stay_as_they_are(db: Database) -> None:
    result = await expand_recipients(["A@Example.test", "b@example.test", "a@example.test"])
    assert result == ExpandedRecipients(
        addresses=("a@example.test", "b@example.test"),
        by_recipient={
            "a@example.test": ("a@example.test",),
            "b@example.test": ("b@example.test",),
        },
    )


async def test_each_destination_transitively(db: Database) -> None:
    await alias("sales@shop.test", "ann@shop.test", "team@shop.test")
    await alias("team@shop.test", "bob@shop.test", "cat@other.test")
    result = await expand_recipients(["sales@shop.test", "dan@shop.test"])
    assert result.addresses == (
        "ann@shop.test",
        "bob@shop.test",
        "cat@other.test",
        "dan@shop.test",
    )
    assert result.by_recipient["sales@shop.test"] == (
        "ann@shop.test",
        "bob@shop.test",
        "cat@other.test",
    )
    assert result.applied == ("sales@shop.test", "team@shop.test")
    assert result.looped == () and result.cycles == ()


async def test_exact_alias_then_mailbox_then_catch_all(db: Database) -> None:
    await mailboxes.create_mailbox("real@corp.test", bus=MemoryBus())
    await alias("@corp.test", "inbox@hub.test")
    await alias("vip@corp.test", "boss@hub.test")
    result = await expand_recipients(["vip@corp.test", "real@corp.test", "typo@corp.test"])
    assert result.by_recipient == {
        "vip@corp.test": ("boss@hub.test",),
        "real@corp.test": ("real@corp.test",),
        "typo@corp.test": ("inbox@hub.test",),
    }
    assert set(result.applied) == {"vip@corp.test", "@corp.test"}


async def test_disabled_aliases_are_ignored(db: Database) -> None:
    await alias("old@corp.test", "new@corp.test", enabled=False)
    await alias("@corp.test", "all@hub.test", enabled=False)
    result = await expand_recipients(["old@corp.test"])
    assert result.addresses == ("old@corp.test",) and result.applied == ()


async def test_self_reference_keeps_a_copy_and_diamonds_deliver_once(db: Database) -> None:
    await alias("me@corp.test", "me@corp.test", "left@corp.test", "right@corp.test")
    await alias("left@corp.test", "archive@corp.test")
    await alias("right@corp.test", "archive@corp.test")
    result = await expand_recipients(["me@corp.test"])
    assert result.addresses == ("me@corp.test", "archive@corp.test")
    assert result.looped == ()


async def test_catch_all_to_its_own_domain_is_no_loop(db: Database) -> None:
    await alias("@corp.test", "desk@corp.test")
    result = await expand_recipients(["anyone@corp.test", "desk@corp.test"])
    assert result.by_recipient == {
        "anyone@corp.test": ("desk@corp.test",),
        "desk@corp.test": ("desk@corp.test",),
    }


async def test_saving_a_loop_is_refused(db: Database) -> None:
    await alias("a@corp.test", "b@corp.test")
    await alias("b@corp.test", "c@corp.test")
    with pytest.raises(Conflict, match=re.escape("a@corp.test -> b@corp.test -> c@corp.test")):
        await alias("c@corp.test", "a@corp.test")
    with pytest.raises(Invalid, match="only to its own source"):
        await alias("solo@corp.test", "solo@corp.test")
    await alias("@one.test", "x@two.test")
    with pytest.raises(Conflict):
        await alias("@two.test", "y@one.test")
    # A mailbox stops a catch-all, so this chain ends there: no loop.
    await mailboxes.create_mailbox("y@one.test", bus=MemoryBus())
    await alias("@two.test", "y@one.test")


async def test_chains_longer_than_the_limit_are_refused(db: Database) -> None:
    limit = aliases.MAX_DEPTH
    for hop in range(limit):
        await alias(f"h{hop}@chain.test", f"h{hop + 1}@chain.test")
    # Too long whichever end grows: the tail here, the head below.
    with pytest.raises(Invalid, match="more than"):
        await alias(f"h{limit}@chain.test", f"h{limit + 1}@chain.test")
    with pytest.raises(Invalid, match="more than"):
        await alias("start@chain.test", "h0@chain.test")
    result = await expand_recipients(["h0@chain.test"])
    assert result.addresses == (f"h{limit}@chain.test",) and result.too_deep == ()


async def test_a_loop_that_appears_later_is_cut_off_and_reported(db: Database) -> None:
    # A loop through a catch-all can appear when a mailbox is deleted; simulate one
    # by writing rows directly, past the check.
    await Alias.create(source="p@corp.test", domain="corp.test", destinations=["q@corp.test"])
    await Alias.create(
        source="q@corp.test", domain="corp.test", destinations=["p@corp.test", "keep@corp.test"]
    )
    result = await expand_recipients(["p@corp.test", "other@corp.test"])
    assert result.addresses == ("keep@corp.test", "other@corp.test")
    assert result.looped == ("p@corp.test",)
    assert result.cycles == ("p@corp.test -> q@corp.test -> p@corp.test",)
    assert await aliases.has_alias("P@corp.test") and not await aliases.has_alias("z@corp.test")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Sales@Shop.TEST", "sales@shop.test"),
        ("@Shop.Test", "@shop.test"),
        ("*@shop.test", "@shop.test"),
        ("@bücher.test", "@xn--bcher-kva.test"),
    ],
)
def test_source_spellings(value: str, expected: str) -> None:
    assert aliases.parse_source(value) == expected


@pytest.mark.parametrize("value", ["", "@", "nobody", "@-x.test", "@a..test", "a@@b.test", "@1.2"])
def test_bad_sources(value: str) -> None:
    with pytest.raises(Invalid):
        aliases.parse_source(value)


def test_destination_lists() -> None:
    assert aliases.parse_destinations("A@x.test; b@x.test\n a@x.test") == ["a@x.test", "b@x.test"]
    with pytest.raises(Invalid):
        aliases.parse_destinations(" , ")
    with pytest.raises(Invalid):
        aliases.parse_destinations(",".join(f"u{i}@x.test" for i in range(101)))


async def test_production_aliases_need_a_managed_domain(db: Database, tmp_path: Path) -> None:
    """Production SMTP takes only managed domains, so an alias elsewhere could never apply."""
    settings = load_settings(
        mode="production",
        admin_password="not-the-default-1",
        secret_key="s" * 40,
        data_dir=tmp_path,
        _env_file=None,
    )
    ctx = Context(
        services=build_services(settings, settings.secret_key, MemoryBus()),
        principal=Principal(user_id=uuid4(), username="root", is_admin=True),
    )
    request = AliasCreateRequest(source_address="@corp.test", destination_address="a@hub.test")
    with pytest.raises(Invalid, match="not managed"):
        await alias_resolvers.create_alias(ctx, request)
    await domains.create_domain(
        "corp.test",
        selector="mail",
        key_type=DkimKeyType.ED25519,
        mta_sts_mode=MtaStsMode.TESTING,
        mta_sts_max_age=86400,
        box=domains.dkim_box(settings.secret_key),
    )
    created = await alias_resolvers.create_alias(ctx, request)
    assert created.is_catchall and created.destinations == ["a@hub.test"]
