"""Aliases: storage, loop refusal, and the recipient expansion SMTP delivery applies.

Which alias applies to an address (:func:`expand_recipients`):

1. an enabled alias whose source is exactly the address;
2. otherwise none if a mailbox has the address (a catch-all never takes
   mail away from a real mailbox);
3. otherwise the enabled catch-all ``@domain`` of the address's domain.

Expansion is transitive. A destination equal to the address being expanded
is kept as a final recipient ("deliver here and forward a copy", as in
Postfix virtual aliases); reaching an address already on the chain is a loop.
Creating or changing an alias that would make a loop is refused.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from tortoise.exceptions import IntegrityError

from mailcue_server.errors import Conflict, Invalid, NotFound
from mailcue_server.mail.addresses import canonical_address
from mailcue_server.mail.dns_records import domain_name
from mailcue_server.store.domain_models import Alias
from mailcue_server.store.mail_models import Mailbox

MAX_DEPTH = 10  # alias hops from a recipient to its final addresses
MAX_DESTINATIONS = 100
# Stands for "any address" of a catch-all's domain when checking for loops.
_ANY_LOCAL_PART = "*"
_SEPARATORS = re.compile(r"[\s,;]+")

Rule = tuple[str, tuple[str, ...]]  # (alias source, destinations)
RuleLookup = Callable[[set[str]], Awaitable[dict[str, Rule]]]


@dataclass(frozen=True)
class ExpandedRecipients:
    """Where mail for some recipients really goes.

    Attributes:
        addresses: Final recipients, each once, grouped by the recipient they came from.
        by_recipient: The final addresses of each recipient given.
        applied: Sources of the aliases that applied (``"@domain"`` for a catch-all).
        looped: Recipients whose expansion hit a loop or ran too deep; their
            other branches are still in ``addresses``.
        cycles: Each loop found, as ``"a -> b -> a"``.
        too_deep: Recipients still expanding after ``MAX_DEPTH`` hops (cut off there).
    """

    addresses: tuple[str, ...]
    by_recipient: dict[str, tuple[str, ...]] = field(default_factory=dict)
    applied: tuple[str, ...] = ()
    looped: tuple[str, ...] = ()
    cycles: tuple[str, ...] = ()
    too_deep: tuple[str, ...] = ()


def normalise(address: str) -> str:
    return address.strip().lower()


def catchall_key(address: str) -> str:
    return "@" + address.rpartition("@")[2]


def parse_source(value: str) -> str:
    """``user@domain`` or a catch-all ``@domain`` (``*@domain`` too), canonical and lowercased.

    Raises:
        Invalid: Neither an address nor ``@domain``.
    """
    text = value.strip()
    if text.startswith(("@", "*@")):
        return "@" + domain_name(text.partition("@")[2])
    return normalise(canonical_address(text))


def parse_destinations(value: str | Iterable[str]) -> list[str]:
    """One or more addresses, separated by commas, semicolons or spaces; duplicates dropped.

    Raises:
        Invalid: None given, too many, or one is not an address.
    """
    parts = _SEPARATORS.split(value) if isinstance(value, str) else list(value)
    found: dict[str, None] = {}
    for part in parts:
        if part.strip():
            found[normalise(canonical_address(part))] = None
    if not found:
        raise Invalid("At least one destination address is required")
    if len(found) > MAX_DESTINATIONS:
        raise Invalid(f"An alias has at most {MAX_DESTINATIONS} destinations")
    return list(found)


async def _existing_mailboxes(addresses: set[str]) -> set[str]:
    rows = await Mailbox.filter(address__in=sorted(addresses)).values_list("address", flat=True)
    return {str(row) for row in rows}


async def _enabled_aliases(sources: list[str] | None) -> dict[str, list[str]]:
    """Destinations of the enabled aliases among ``sources`` (``None``: all of them).

    Plain parameterised SQL: this runs on the SMTP hot path, where building
    the ORM query cost more than the rest of a batch.
    """
    if sources is not None and not sources:
        return {}
    db = Alias._meta.db
    sqlite = db.capabilities.dialect == "sqlite"
    where = f'"enabled" = {"1" if sqlite else "TRUE"}'
    if sources is not None:
        marks = ", ".join("?" if sqlite else f"${n}" for n in range(1, len(sources) + 1))
        where += f' AND "source" IN ({marks})'
    sql = 'SELECT "source", "destinations" FROM "aliases" WHERE ' + where  # noqa: S608
    rows = await db.execute_query_dict(sql, sources or [])
    found: dict[str, list[str]] = {}
    for row in rows:
        value = row["destinations"]
        found[str(row["source"])] = list(json.loads(value) if isinstance(value, str) else value)
    return found


# Bumped by every alias change this process makes: an AliasCache of this process
# reloads at its next use, whatever its age.
_changes = 0


def _changed() -> None:
    global _changes
    _changes += 1


class AliasCache:
    """The enabled aliases, kept between group commits of the SMTP hot path.

    Looking them up was a database round trip per commit (about a tenth of
    the loop's time per message). The whole table of enabled aliases is
    read at once instead, and read again after any alias change this
    process made, or once it is ``ttl`` seconds old (changes other nodes
    made apply within that time).
    """

    def __init__(self, ttl: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl
        self._clock = clock
        self._table: dict[str, list[str]] | None = None
        self._loaded_at = 0.0
        self._seen = -1

    async def lookup(self, sources: list[str]) -> dict[str, list[str]]:
        """Destinations of the enabled aliases among ``sources`` (as :func:`_enabled_aliases`)."""
        now = self._clock()
        if self._table is None or self._seen != _changes or now - self._loaded_at > self._ttl:
            self._seen = _changes
            self._table = await _enabled_aliases(None)
            self._loaded_at = now
        table = self._table
        return {source: table[source] for source in sources if source in table}


async def _rules(
    addresses: set[str],
    overlay: dict[str, list[str]] | None = None,
    *,
    cache: AliasCache | None = None,
) -> dict[str, Rule]:
    """The alias that applies to each address that has one (module docstring, steps 1-3).

    With ``overlay`` the aliases come from that dict instead of the table
    (the loop check tries a change before saving it); mailboxes always come
    from the table. With ``cache`` they come from it.
    """
    keys = addresses | {catchall_key(address) for address in addresses}
    if overlay is not None:
        found = {key: overlay[key] for key in keys if key in overlay}
    elif cache is not None:
        found = await cache.lookup(sorted(keys))
    else:
        found = await _enabled_aliases(sorted(keys))
    if not found:
        return {}
    rules: dict[str, Rule] = {}
    catchall: dict[str, str] = {}
    for address in addresses:
        if address in found:
            rules[address] = (address, tuple(found[address]))
        elif catchall_key(address) in found:
            catchall[address] = catchall_key(address)
    if catchall:
        mailboxes = await _existing_mailboxes(set(catchall))
        for address, key in catchall.items():
            if address not in mailboxes:
                rules[address] = (key, tuple(found[key]))
    return rules


async def _expand(recipients: Iterable[str], rules: RuleLookup) -> ExpandedRecipients:
    """Breadth-first expansion: one lookup per hop for all recipients together."""
    finals: dict[str, dict[str, None]] = {}
    applied: dict[str, None] = {}
    looped: dict[str, None] = {}
    cycles: list[str] = []
    seen: set[tuple[str, str]] = set()
    frontier: list[tuple[str, str, tuple[str, ...]]] = []
    for recipient in recipients:
        address = normalise(recipient)
        if address not in finals:
            finals[address] = {}
            seen.add((address, address))
            frontier.append((address, address, ()))
    hops = 0
    while frontier and hops <= MAX_DEPTH:
        found = await rules({address for _, address, _ in frontier})
        following: list[tuple[str, str, tuple[str, ...]]] = []
        for origin, address, path in frontier:
            rule = found.get(address)
            if rule is None:
                finals[origin][address] = None
                continue
            applied[rule[0]] = None
            chain = (*path, address)
            for destination in rule[1]:
                if destination == address:
                    finals[origin][address] = None
                elif destination in chain:
                    looped[origin] = None
                    cycles.append(" -> ".join((*chain[chain.index(destination) :], destination)))
                elif (origin, destination) not in seen:
                    seen.add((origin, destination))
                    following.append((origin, destination, chain))
        frontier = following
        hops += 1
    for origin, _, _ in frontier:  # still expanding after MAX_DEPTH hops
        looped[origin] = None
    every: dict[str, None] = {}
    for addresses in finals.values():
        every.update(addresses)
    return ExpandedRecipients(
        addresses=tuple(every),
        by_recipient={origin: tuple(addresses) for origin, addresses in finals.items()},
        applied=tuple(applied),
        looped=tuple(looped),
        cycles=tuple(cycles),
        too_deep=tuple(dict.fromkeys(origin for origin, _, _ in frontier)),
    )


async def expand_recipients(
    addresses: Iterable[str], cache: AliasCache | None = None
) -> ExpandedRecipients:
    """Apply the enabled aliases to envelope recipients (SMTP receipt and local delivery).

    One query per alias hop (plus one for mailboxes when a catch-all is in
    play); a message to recipients without aliases costs a single indexed
    query, or none with a ``cache`` that is fresh.
    """

    async def rules(found: set[str]) -> dict[str, Rule]:
        return await _rules(found, cache=cache)

    return await _expand(addresses, rules)


async def has_alias(address: str) -> bool:
    """True if some enabled alias applies to ``address`` (production RCPT checks)."""
    return bool(await _rules({normalise(address)}))


async def list_aliases() -> list[Alias]:
    return await Alias.all().order_by("source")


async def get_alias(alias_id: int) -> Alias:
    alias = await Alias.get_or_none(id=alias_id)
    if alias is None:
        raise NotFound("Alias not found")
    return alias


def _start(source: str) -> str:
    """Where expansion from an alias starts: its address, or "any address" of a catch-all."""
    return _ANY_LOCAL_PART + source if source.startswith("@") else source


async def _loops(aliases: dict[str, list[str]], first: str) -> tuple[list[str], set[str]]:
    """Cycles and too-deep chains when these aliases are the enabled ones.

    Expands from every source at once (one lookup per hop), ``first`` first,
    so its cycle is the one reported when there are several.
    """

    async def lookup(addresses: set[str]) -> dict[str, Rule]:
        return await _rules(addresses, aliases)

    starts = [_start(first), *(_start(source) for source in aliases if source != first)]
    result = await _expand(starts, lookup)
    return list(result.cycles), set(result.too_deep)


async def _refuse_loops(source: str, destinations: list[str], alias_id: int | None) -> None:
    """Refuse a change that makes a loop or a too-long chain that was not there before.

    Every enabled alias is expanded with and without the change, so a chain
    that the change makes too long is caught wherever it starts.

    Raises:
        Invalid: The alias points only at itself, or a chain gets too long.
        Conflict: With the existing aliases it would make a loop.
    """
    if destinations == [source]:
        raise Invalid("An alias cannot point only to its own source")
    rows = await Alias.filter(enabled=True).values_list("id", "source", "destinations")
    before = {str(row_source): list(targets) for row_id, row_source, targets in rows}
    after = {
        str(row_source): list(targets)
        for row_id, row_source, targets in rows
        if row_id != alias_id
    }
    after[source] = destinations
    cycles_before, deep_before = await _loops(before, source)
    cycles_after, deep_after = await _loops(after, source)
    new_cycles = [cycle for cycle in cycles_after if cycle not in cycles_before]
    if new_cycles:
        raise Conflict(f"This alias would create a loop: {new_cycles[0]}")
    if deep_after - deep_before:
        raise Invalid(f"This alias would make a chain of more than {MAX_DEPTH} aliases")


async def create_alias(source: str, destinations: list[str], *, enabled: bool = True) -> Alias:
    """Store a new alias (source and destinations already parsed).

    Raises:
        Conflict: The source already has an alias, or the alias would make a loop.
        Invalid: See :func:`_refuse_loops`.
    """
    if await Alias.exists(source=source):
        raise Conflict(f"An alias for '{source}' already exists")
    if enabled:
        await _refuse_loops(source, destinations, None)
    try:
        created = await Alias.create(
            source=source,
            domain=source.rpartition("@")[2],
            destinations=destinations,
            enabled=enabled,
        )
    except IntegrityError as exc:
        raise Conflict(f"An alias for '{source}' already exists") from exc
    _changed()
    return created


async def update_alias(
    alias: Alias, *, destinations: list[str] | None = None, enabled: bool | None = None
) -> Alias:
    """Change destinations and/or the enabled flag; a change that would loop is refused."""
    new_destinations = alias.destinations if destinations is None else destinations
    new_enabled = alias.enabled if enabled is None else enabled
    if new_enabled:
        await _refuse_loops(alias.source, list(new_destinations), alias.id)
    alias.destinations = list(new_destinations)
    alias.enabled = new_enabled
    await alias.save(update_fields=["destinations", "enabled", "updated_at"])
    _changed()
    return alias


async def delete_alias(alias: Alias) -> None:
    await alias.delete()
    _changed()
