"""Every public method of the official SDK (PyPI ``mailcue``), sync and async, against our server.

The same scenario runs once with ``AsyncMailcue`` and once with ``Mailcue`` (its
calls in threads, since the server shares this event loop). A recorder notes
each method the scenario calls; the list of public methods is read from the
SDK itself, so a method added to the SDK, or one the scenario stops calling,
fails :func:`test_every_sdk_method_is_driven`.
"""

from __future__ import annotations

import asyncio
import inspect
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aiosmtplib
import httpx
import pytest
import pytest_asyncio
from mailcue import AsyncMailcue, Mailcue
from mailcue.events import AsyncSSEClient, SSEClient
from mailcue.exceptions import ConflictError, NotFoundError
from mailcue.resources._base import AsyncResource, SyncResource

from accounts import admin, new_api_key
from conftest import node_settings
from dns_server import dns_server
from fake_mx import FakeMx, fake_mx
from mailcue_server.app import MailcueServer
from vks_stub import KEYSERVER_TIMEOUT, VksStub

WAIT = 10.0
CLIENT_LEVEL = {"Mailcue": {"base_url", "close"}, "AsyncMailcue": {"base_url", "aclose"}}


def sdk_surface(client: Mailcue | AsyncMailcue) -> set[str]:
    """``resource.method`` for every public method of every resource, plus the client's own."""
    names = set(CLIENT_LEVEL[type(client).__name__])
    for attribute, resource in vars(client).items():
        if not isinstance(resource, SyncResource | AsyncResource | SSEClient | AsyncSSEClient):
            continue
        for name, member in inspect.getmembers(type(resource)):
            if not name.startswith("_") and callable(member):
                names.add(f"{attribute}.{name}")
    return names


# --- one driver for both clients --------------------------------------------------------------


@dataclass
class Driver:
    """An SDK client whose every call the scenario awaits alike, and which notes each call."""

    client: Mailcue | AsyncMailcue
    called: set[str] = field(default_factory=set)

    def __getattr__(self, resource: str) -> _Resource:
        return _Resource(self, resource)

    @property
    def is_async(self) -> bool:
        return isinstance(self.client, AsyncMailcue)

    @property
    def base_url(self) -> str:
        self.called.add("base_url")
        return self.client.base_url

    async def close(self) -> None:
        if isinstance(self.client, AsyncMailcue):
            self.called.add("aclose")
            await self.client.aclose()
        else:
            self.called.add("close")
            await asyncio.to_thread(self.client.close)

    async def first_event(self, accept: Callable[[Any], bool], trigger: Callable[[], Any]) -> Any:
        """Read the SDK's SSE stream until an event ``accept`` takes; ``trigger`` causes events.

        The stream cannot tell when the server has subscribed, so ``trigger``
        runs every half second until the event arrives.
        """
        self.called.add("events.stream")

        async def poke() -> None:
            while True:
                await asyncio.sleep(0.5)
                await trigger()

        poking = asyncio.create_task(poke())
        try:
            async with asyncio.timeout(WAIT):
                if isinstance(self.client, AsyncMailcue):
                    stream = self.client.events.stream()
                    try:
                        async for event in stream:
                            if accept(event):
                                return event
                    finally:
                        await stream.aclose()
                return await asyncio.to_thread(_first_sync_event, self.client, accept)
        finally:
            poking.cancel()
        raise AssertionError("the event stream ended")


def _first_sync_event(client: Mailcue, accept: Callable[[Any], bool]) -> Any:
    stream = client.events.stream()
    try:
        for event in stream:
            if accept(event):
                return event
    finally:
        stream.close()
    raise AssertionError("the event stream ended")


@dataclass
class _Resource:
    driver: Driver
    name: str

    def __getattr__(self, method: str) -> Callable[..., Any]:
        target = getattr(getattr(self.driver.client, self.name), method)
        self.driver.called.add(f"{self.name}.{method}")

        async def call(*args: Any, **kwargs: Any) -> Any:
            if inspect.iscoroutinefunction(target):
                return await target(*args, **kwargs)
            return await asyncio.to_thread(target, *args, **kwargs)

        return call


# --- the world the scenario runs in ------------------------------------------------------------


@dataclass
class World:
    server: MailcueServer
    mx: FakeMx
    vks: VksStub
    key: str  # an admin's API key with every scope

    @property
    def url(self) -> str:
        return self.server.http_url


@pytest.fixture(scope="module")
def vks() -> Iterator[VksStub]:
    stub = VksStub()
    yield stub
    stub.close()


@pytest_asyncio.fixture(scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory, vks: VksStub) -> AsyncIterator[World]:
    """A node with DNS (dnsmasq), an MX that validation probes, and a keyserver."""
    async with (
        fake_mx(mailboxes={"alice@ok.test"}, catch_all_domains={"any.test"}) as mx,
        dns_server(
            mx=[("ok.test", "mx.ok.test", 10), ("any.test", "mx.ok.test", 10)],
            hosts={"mx.ok.test": ["127.0.0.1"]},
        ) as resolver,
    ):
        settings = node_settings(
            tmp_path_factory.mktemp("sdk-methods"),
            dns_resolver=resolver,
            validation_smtp_port=mx.port,
            validation_timeout=2.0,
            keyserver_url=vks.url,
            keyserver_timeout=KEYSERVER_TIMEOUT,
            dns_check_interval=0,
        )
        node = MailcueServer(settings)
        await node.start()
        try:
            async with httpx.AsyncClient(base_url=node.http_url, timeout=10) as http:
                key = (await new_api_key(http, await admin(http), name="sdk-all"))["key"]
            yield World(node, mx, vks, key)
        finally:
            await node.stop()


def clients(world: World) -> dict[str, Mailcue | AsyncMailcue]:
    return {
        "async": AsyncMailcue(api_key=world.key, base_url=world.url, max_retries=0),
        "sync": Mailcue(api_key=world.key, base_url=world.url, max_retries=0),
    }


async def smtp_send(world: World, to: str, subject: str, *, sender: str) -> None:
    raw = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{secrets.token_hex(8)}@sdk.test>\r\n\r\nover SMTP\r\n"
    ).encode()
    await aiosmtplib.send(
        raw,
        sender=sender,
        recipients=[to],
        hostname="127.0.0.1",
        port=world.server.port("smtp"),
        start_tls=False,
        timeout=WAIT,
    )


def dsn(reporting: str, failures: dict[str, str]) -> str:
    """A delivery status notification (RFC 3464) for ``address -> status``."""
    blocks = "".join(
        f"\r\nFinal-Recipient: rfc822; {address}\r\nAction: "
        f"{'failed' if status.startswith('5') else 'delayed'}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {'550' if status.startswith('5') else '451'} {status} "
        "mailbox unavailable\r\n"
        for address, status in failures.items()
    )
    return (
        "From: MAILER-DAEMON@mx.sdk.test\r\nTo: sender@example.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nYour mail could not be delivered.\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {reporting}\r\n{blocks}\r\n--b1--\r\n"
    )


# --- the scenario ---------------------------------------------------------------------------


async def scenario(c: Driver, world: World) -> None:
    tag = f"{'a' if c.is_async else 's'}{secrets.token_hex(3)}"
    assert c.base_url == world.url
    await system_calls(c)
    await api_key_calls(c, tag)
    box = await mailbox_and_email_calls(c, world, tag)
    await wait_for_a_new_address(c, world, tag)
    await domain_and_alias_calls(c, world, tag)
    await gpg_calls(c, world, box)
    await event_calls(c, box)
    await validation_calls(c, world, tag)
    await bounce_and_suppression_calls(c, tag)
    await send_canary_calls(c, box, tag)
    assert (await c.mailboxes.purge(box))["deleted"] >= 1
    assert (await c.mailboxes.list_emails(box)).total == 0
    await c.mailboxes.delete(box)
    assert box not in [m.address for m in (await c.mailboxes.list()).mailboxes]


async def system_calls(c: Driver) -> None:
    assert (await c.system.health()).status == "healthy"
    certificate = await c.system.get_certificate()
    assert certificate.common_name and certificate.fingerprint_sha256
    pem = await c.system.download_certificate()
    assert pem.startswith(b"-----BEGIN CERTIFICATE-----")
    settings = await c.system.settings()
    assert settings["mode"] == "test" and settings["catch_all_enabled"] is True
    tls = await c.system.tls_status()
    assert tls.configured is False  # no certificate uploaded: the local CA's is served


async def api_key_calls(c: Driver, tag: str) -> None:
    created = await c.api_keys.create(
        f"key-{tag}", scopes=["email:read"], allowed_mailboxes=[f"only-{tag}@example.test"]
    )
    assert created.key.startswith("mc_") and created.scopes == ["email:read"]
    assert created.id in [k.id for k in await c.api_keys.list()]
    updated = await c.api_keys.update(created.id, name=f"renamed-{tag}", scopes=["email:send"])
    assert (updated.name, updated.scopes) == (f"renamed-{tag}", ["email:send"])
    await c.api_keys.delete(created.id)
    assert created.id not in [k.id for k in await c.api_keys.list() if k.is_active]


async def mailbox_and_email_calls(c: Driver, world: World, tag: str) -> str:
    box = await c.mailboxes.create(f"box{tag}", "sdk-password-1", domain="example.test")
    assert box.address == f"box{tag}@example.test" and box.domain == "example.test"
    assert box.address in [m.address for m in (await c.mailboxes.list()).mailboxes]
    stored = await c.emails.inject(
        mailbox=box.address,
        from_address="shop@example.org",
        to_addresses=[box.address],
        subject=f"Order {tag}",
        text_body="Thanks for ordering",
        date=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    bulk = await c.emails.bulk_inject(
        [
            {
                "mailbox": box.address,
                "from_address": "news@example.org",
                "to_addresses": [box.address],
                "subject": f"News {n}",
                "text_body": "news",
            }
            for n in range(2)
        ]
    )
    assert (bulk.injected, bulk.failed, len(bulk.ids)) == (2, 0, 2)
    listing = await c.emails.list(mailbox=box.address, search=f"subject:{tag}")
    assert [e.uid for e in listing.emails] == [stored["uid"]]
    detail = await c.emails.get(stored["uid"], mailbox=box.address)
    assert detail.subject == f"Order {tag}" and detail.text_body == "Thanks for ordering\n"
    raw = await c.emails.get_raw(stored["uid"], mailbox=box.address)
    assert f"Subject: Order {tag}".encode() in raw
    await c.emails.delete(stored["uid"], mailbox=box.address)
    with pytest.raises(NotFoundError):
        await c.emails.get(stored["uid"], mailbox=box.address)

    sent = await c.emails.send(
        from_=box.address,
        from_name="SDK Box",
        to=[box.address],
        subject=f"Report {tag}",
        text="see the attachment",
        attachments=[{"filename": "report.csv", "content": b"a,b\n1,2\n"}],
    )
    assert sent.message_id
    [arrived] = await c.emails.wait_for(
        mailbox=box.address, subject=f"Report {tag}", timeout=WAIT, interval=0.1
    )
    parts = (await c.emails.get(arrived.uid, mailbox=box.address)).attachments
    assert [p.filename for p in parts] == ["report.csv"]
    data = await c.emails.get_attachment(arrived.uid, parts[0].part_id, mailbox=box.address)
    assert data == b"a,b\n1,2\n"
    mine = await c.mailboxes.list_emails(box.address, page_size=10)
    assert {e.subject for e in mine.emails} == {"News 0", "News 1", f"Report {tag}"}
    stats = await c.mailboxes.stats(box.id)
    folders = {f.name: f.message_count for f in stats.folders}
    assert folders["INBOX"] == 3 and folders["Sent"] == 1
    return str(box.address)


async def wait_for_a_new_address(c: Driver, world: World, tag: str) -> None:
    """wait_for polls an address with no mailbox yet; the first SMTP mail creates it."""
    address = f"fresh{tag}@brand-new.test"
    subject = f"Welcome {tag}"
    waiting = asyncio.create_task(
        c.emails.wait_for(mailbox=address, subject=subject, timeout=WAIT, interval=0.1)
    )
    await asyncio.sleep(0.5)
    assert not waiting.done(), "wait_for gave up before the mail was sent"
    await smtp_send(world, address, subject, sender="signup@shop.test")
    [found] = await waiting
    assert (found.subject, found.from_address, found.mailbox) == (
        subject,
        "signup@shop.test",
        address,
    )


async def domain_and_alias_calls(c: Driver, world: World, tag: str) -> None:
    name = f"d{tag}.test"
    domain = await c.domains.create(name)
    assert domain.name == name and domain.dkim_selector
    assert name in [d.name for d in (await c.domains.list()).domains]
    detail = await c.domains.get(name)
    assert {r.record_type for r in detail.dns_records} >= {"MX", "TXT"}
    check = await c.domains.verify_dns(name)
    assert check.all_verified is False and check.mx_verified is False  # nothing published

    destination = f"dest{tag}@example.test"
    alias = await c.aliases.create(f"sales@{name}", destination)
    assert (alias.source_address, alias.destination_address) == (f"sales@{name}", destination)
    assert (await c.aliases.get(alias.id)).id == alias.id
    assert alias.id in [a.id for a in (await c.aliases.list()).aliases]
    await smtp_send(world, f"sales@{name}", f"Lead {tag}", sender="buyer@shop.test")
    [lead] = await c.emails.wait_for(mailbox=destination, timeout=WAIT, interval=0.1)
    assert lead.subject == f"Lead {tag}"
    disabled = await c.aliases.update(alias.id, enabled=False)
    assert disabled.enabled is False
    await c.aliases.delete(alias.id)
    with pytest.raises(NotFoundError):
        await c.aliases.get(alias.id)
    await c.domains.delete(name)
    assert name not in [d.name for d in (await c.domains.list()).domains]


async def gpg_calls(c: Driver, world: World, box: str) -> None:
    key = await c.gpg.generate(box, name="SDK Box", algorithm="ECC")
    assert key.mailbox_address == box and key.is_private is True
    assert (await c.gpg.get(box)).fingerprint == key.fingerprint
    assert key.fingerprint in [k.fingerprint for k in (await c.gpg.list()).keys]
    exported = await c.gpg.export_public(box)
    assert exported.public_key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----")
    published = await c.gpg.publish(box)
    assert published.published is True and published.key_fingerprint == key.fingerprint
    assert world.vks.uploads[-1] == exported.public_key
    await c.gpg.delete(box)
    with pytest.raises(NotFoundError):
        await c.gpg.get(box)
    imported = await c.gpg.import_key(exported.public_key, mailbox_address=box)
    assert imported.fingerprint == key.fingerprint and imported.is_private is False


async def event_calls(c: Driver, box: str) -> None:
    subject = f"Event {secrets.token_hex(3)}"

    async def inject() -> None:
        await c.emails.inject(
            mailbox=box, from_address="ev@example.org", to_addresses=[box], subject=subject
        )

    event = await c.first_event(
        lambda e: e.event_type == "email.received" and e.data.get("subject") == subject, inject
    )
    assert event.data["mailbox"] == box


async def validation_calls(c: Driver, world: World, tag: str) -> None:
    single = await c.emails.validate("alice@ok.test")
    assert (single.status, single.verdict, single.mailbox.smtp_code) == (
        "valid",
        "deliverable",
        250,
    )
    before = await c.emails.validation_calibration(days=30, scope="tenant")
    catch_all = f"x{tag}@any.test"
    batch = await c.emails.validate_batch(
        ["alice@ok.test", catch_all, "nobody@ok.test", "not-an-address"],
        target_bounce_rate=0.1,
    )
    statuses = [(r.email, r.status) for r in batch.results]
    assert statuses == [
        ("alice@ok.test", "valid"),
        (catch_all, "catch_all"),
        ("nobody@ok.test", "invalid"),
        ("not-an-address", "invalid"),
    ]
    assert batch.results[1].catch_all_risk is not None
    assert (batch.summary.total, batch.summary.valid, batch.summary.invalid) == (4, 1, 2)
    assert batch.selection is not None and "alice@ok.test" in batch.selection.included
    assert "nobody@ok.test" in batch.selection.excluded
    feedback = await c.emails.record_validation_feedback(
        catch_all, "hard_bounce", smtp_code=550, enhanced_status="5.1.1"
    )
    assert (feedback.recorded, feedback.outcome) == (True, "hard_bounce")
    after = await c.emails.validation_calibration(days=30, scope="tenant")
    assert after.sample_size == before.sample_size + 1
    assert after.bins and sum(b.count for b in after.bins) == after.sample_size


async def bounce_and_suppression_calls(c: Driver, tag: str) -> None:
    domain = f"bounce{tag}.test"
    failures = {f"u{n}@{domain}": "5.1.1" for n in range(5)}
    ingested = await c.emails.ingest_bounce(dsn("mx.sdk.test", failures))
    assert ingested.is_dsn is True and ingested.recorded == 5
    assert {r.recipient for r in ingested.recipients} == set(failures)
    assert {(r.outcome, r.smtp_code, r.status) for r in ingested.recipients} == {
        ("hard_bounce", 550, "5.1.1")
    }
    suppressed = await c.emails.suppressed_domains()
    entry = next(s for s in suppressed.suppressions if s.domain == domain)
    assert (entry.hard_bounces, entry.observations) == (5, 5)
    assert entry.expires_at is not None and entry.expires_at > entry.created_at
    plain = await c.emails.ingest_bounce("Subject: hello\r\n\r\nnot a bounce\r\n")
    assert (plain.is_dsn, plain.recorded, plain.recipients) == (False, 0, [])


async def send_canary_calls(c: Driver, box: str, tag: str) -> None:
    good, bad = f"good{tag}.test", f"bad{tag}.test"
    recipients = [f"s@{good}", f"h1@{good}", f"s@{bad}", f"h@{bad}", f"h2@{good}"]
    canary = await c.emails.create_send_canary(
        recipients=recipients,
        from_address=box,
        subject=f"Launch {tag}",
        body="big news",
        name=f"launch-{tag}",
        sample_size=1,
        hold_minutes=30,
    )
    assert (canary.status, canary.sample_recipients, canary.held_recipients) == ("probing", 2, 3)
    roles = {r.email: (r.role, r.status) for r in canary.recipients}
    assert roles[f"s@{good}"] == ("sample", "sent") and roles[f"h1@{good}"] == ("held", "pending")
    [sample] = await c.emails.wait_for(mailbox=f"s@{bad}", timeout=WAIT, interval=0.1)
    assert sample.subject == f"Launch {tag}"
    await c.emails.ingest_bounce(dsn("mx.sdk.test", {f"s@{bad}": "5.1.1"}))
    seen = await c.emails.get_send_canary(canary.id)
    assert {r.email: r.status for r in seen.recipients}[f"s@{bad}"] == "hard_bounce"
    assert seen.hard_bounces == 1
    assert canary.id in [x.id for x in (await c.emails.list_send_canaries(limit=100)).canaries]
    decided = await c.emails.decide_send_canary(canary.id)
    assert decided.status == "released" and decided.decided_at is not None
    after = {r.email: r.status for r in decided.recipients}
    assert (after[f"h1@{good}"], after[f"h2@{good}"], after[f"h@{bad}"]) == (
        "released",
        "released",
        "blocked",
    )
    assert f"blocked: 1 of 1 sampled at {bad}" in (decided.decision_reason or "")
    await c.emails.wait_for(mailbox=f"h2@{good}", min_count=1, timeout=WAIT, interval=0.1)
    assert (await c.emails.list(mailbox=f"h@{bad}")).total == 0  # held back: never sent

    second = await c.emails.create_send_canary(
        recipients=[f"a@{good}", f"b@{good}"], from_address=box, subject="Later", sample_size=1
    )
    cancelled = await c.emails.cancel_send_canary(second.id)
    assert cancelled.status == "cancelled"
    assert {r.email: r.status for r in cancelled.recipients}[f"b@{good}"] == "skipped"
    with pytest.raises(ConflictError):
        await c.emails.decide_send_canary(second.id)


# --- the tests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["async", "sync"])
async def test_sdk_scenario_drives_every_method(world: World, kind: str) -> None:
    client = clients(world)[kind]
    surface = sdk_surface(client)
    driver = Driver(client)
    try:
        await scenario(driver, world)
    finally:
        await driver.close()
    missing = surface - driver.called
    assert not missing, f"{kind} SDK methods the scenario does not drive: {sorted(missing)}"


async def test_the_surface_is_read_from_the_sdk() -> None:
    """The enumeration finds the methods (a new SDK method would join the list by itself)."""
    sync, asynchronous = Mailcue(api_key="mc_x"), AsyncMailcue(api_key="mc_x")
    for client in (sync, asynchronous):
        surface = sdk_surface(client)
        assert {
            "emails.wait_for",
            "emails.validate_batch",
            "emails.cancel_send_canary",
            "mailboxes.purge",
            "gpg.publish",
            "events.stream",
            "system.tls_status",
            "base_url",
        } <= surface
        assert len(surface) >= 55, sorted(surface)  # 0.2.0 has 55
    sync.close()
    await asynchronous.aclose()


async def test_wait_for_times_out_cleanly_for_mail_that_never_comes(world: World) -> None:
    from mailcue.exceptions import TimeoutError as SdkTimeout

    async with AsyncMailcue(api_key=world.key, base_url=world.url, max_retries=0) as client:
        started = asyncio.get_running_loop().time()
        with pytest.raises(SdkTimeout):
            await client.emails.wait_for(
                mailbox=f"never{secrets.token_hex(3)}@brand-new.test", timeout=0.5, interval=0.1
            )
        assert asyncio.get_running_loop().time() - started >= 0.5
