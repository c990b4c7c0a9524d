"""The web UI in Debian's Chromium against a real ``mailcue serve``, mail sent over SMTP.

Each test reads like a user's steps through the page objects in ``pages.py``; axe-core
checks every page shown; screenshots land in tests/webui/screenshots/ (not committed).
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pyotp
import pytest
from playwright.async_api import Page, expect

from webui.harness import ADMIN, SCREENSHOTS, Guard, UiServer
from webui.pages import FolderNav, InboxPage, SignInPage, assert_accessible, screenshot

PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082"
)


def message(to: str, subject: str, text: str, html: str | None = None) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Shop <shop@example.net>"
    mail["To"] = to
    mail["Subject"] = subject
    mail.set_content(text)
    if html is not None:
        mail.add_alternative(html, subtype="html")
    return mail


def new_address() -> str:
    return f"ui-{uuid.uuid4().hex[:8]}@example.com"


async def sign_in(page: Page, username: str = ADMIN[0], password: str = ADMIN[1]) -> InboxPage:
    sign_in_page = await SignInPage(page).open()
    await sign_in_page.sign_in(username, password)
    inbox = InboxPage(page)
    await expect(inbox.mailboxes).to_be_visible()
    return inbox


async def test_sign_in_and_new_mail_appears_in_the_open_list_without_reload(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    address = new_address()
    ui_server.send(message(address, "Welcome aboard", "First message."))

    sign_in_page = await SignInPage(page).open()
    assert "/signin" in page.url
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "signin-light")
    await sign_in_page.sign_in(*ADMIN)

    inbox = InboxPage(page)
    await inbox.open_mailbox(address)
    await expect(inbox.row("Welcome aboard")).to_be_visible()
    await page.evaluate("window.__sameDocument = true")

    ui_server.send(message(address, "Your order shipped", "Second message."))
    await expect(inbox.row("Your order shipped")).to_be_visible(timeout=5000)
    assert await page.evaluate("window.__sameDocument === true")  # no reload happened
    # Newest first, and the mailbox's unread count followed.
    await expect(inbox.rows.first).to_contain_text("Your order shipped")
    await expect(inbox.mailbox_link(address)).to_contain_text("2")
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "inbox-light")
    # A first message to a new address: its mailbox joins the shell, live too.
    newcomer = new_address()
    ui_server.send(message(newcomer, "Hello newcomer", "A new mailbox."))
    await expect(inbox.mailbox_link(newcomer)).to_be_visible(timeout=5000)

    view = await inbox.open_message("Your order shipped")
    await expect(await view.tab("Text")).to_contain_text("Second message.")
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "message-light")

    await page.get_by_label("Theme").select_option("dark")
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "message-dark")

    await inbox.sign_out()  # a fresh page load: nothing of the session stays in memory
    await page.wait_for_url(re.compile(r"/signin$"))
    await page.wait_for_load_state()
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    await page.reload()  # the refresh cookie is gone: still signed out
    await expect(page.get_by_role("button", name="Sign in")).to_be_visible()


async def test_a_reload_keeps_the_session_through_the_refresh_cookie(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    address = new_address()
    ui_server.send(message(address, "Kept across reloads", "Hello."))
    inbox = await sign_in(page)
    await inbox.open_mailbox(address)
    await page.reload()
    await expect(inbox.row("Kept across reloads")).to_be_visible()


class Hits(BaseHTTPRequestHandler):
    counts: ClassVar[Counter[str]] = Counter()

    def do_GET(self) -> None:
        Hits.counts[self.path] += 1
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(PNG)))
        self.end_headers()
        self.wfile.write(PNG)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hit_counter() -> Iterator[tuple[str, Counter[str]]]:
    """A loopback HTTP server that counts requests by path (what a mail's HTML may call)."""
    Hits.counts.clear()
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hits)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Hits.counts
    server.shutdown()
    server.server_close()


async def test_a_messages_script_never_runs_and_remote_images_wait_for_the_user(
    guarded: tuple[Page, Guard], ui_server: UiServer, hit_counter: tuple[str, Counter[str]]
) -> None:
    page, guard = guarded
    guard.mail_blocks_expected = True
    origin, hits = hit_counter
    address = new_address()
    html = (
        "<h1>Spring sale</h1>"
        f"<script>fetch('{origin}/script'); new Image().src = '{origin}/script-image';</script>"
        f"<img src=x onerror=\"fetch('{origin}/onerror')\">"
        f'<img alt="banner" src="{origin}/banner.png">'
        '<a href="https://example.org/offer">See the offer</a>'
    )
    ui_server.send(message(address, "Spring sale", "Sale text.", html))

    inbox = await sign_in(page)
    await inbox.open_mailbox(address)
    view = await inbox.open_message("Spring sale")
    await expect(view.frame.get_by_role("heading", name="Spring sale")).to_be_visible()
    link = view.frame.get_by_role("link", name="See the offer")
    await expect(link).to_have_attribute("target", "_blank")
    await expect(link).to_have_attribute("rel", "noopener noreferrer")
    await expect(view.load_remote).to_be_visible()
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "message-html-blocked")
    # Give a script every chance to have run: the frame is fully loaded and painted.
    await page.wait_for_timeout(300)
    assert hits["/banner.png"] == 0

    await view.load_remote.click()
    deadline = time.monotonic() + 5
    while hits["/banner.png"] == 0 and time.monotonic() < deadline:
        await page.wait_for_timeout(50)
    assert hits["/banner.png"] >= 1
    await expect(view.frame.get_by_role("heading", name="Spring sale")).to_be_visible()
    assert hits["/script"] == hits["/script-image"] == hits["/onerror"] == 0, hits
    await screenshot(page, SCREENSHOTS, "message-html-remote")


async def test_viewer_tabs_and_the_raw_download_is_the_stored_message(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    address = new_address()
    mail = message(address, "Invoice 42", "Please find the invoice attached.")
    mail.add_attachment(
        b"%PDF-1.4 test", maintype="application", subtype="pdf", filename="invoice.pdf"
    )
    mail["X-Campaign"] = "spring-2026"
    ui_server.send(mail)

    inbox = await sign_in(page)
    await inbox.open_mailbox(address)
    view = await inbox.open_message("Invoice 42")
    await expect(await view.tab("Text")).to_contain_text("Please find the invoice attached.")

    headers = await view.tab("Headers")
    await headers.get_by_label("Filter headers").fill("campaign")
    await expect(headers.get_by_role("row")).to_have_count(2)  # the head row and X-Campaign
    await expect(headers).to_contain_text("spring-2026")
    await assert_accessible(page)

    parts = await view.tab("Parts")
    await expect(parts).to_contain_text("invoice.pdf")
    await expect(parts).to_contain_text("application/pdf")
    await assert_accessible(page)

    raw = await view.tab("Raw")
    await expect(raw).to_contain_text("X-Campaign: spring-2026")
    async with page.expect_download() as download_info:
        await raw.get_by_role("button", name="Download .eml").click()
    download = await download_info.value
    uid = page.url.rsplit("/", 1)[1]
    stored = ui_server.api.get(f"/api/v1/emails/{uid}/raw", params={"mailbox": address})
    assert stored.status_code == 200
    path = await download.path()
    assert path is not None and path.read_bytes() == stored.content
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "message-raw")


async def test_sign_in_with_a_totp_code_when_two_factor_is_on(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    name = f"ui{uuid.uuid4().hex[:8]}"
    password = "Tangerine-Lighthouse-71"
    created = ui_server.api.post(
        "/api/v1/auth/register",
        json={"username": name, "email": f"{name}@example.com", "password": password},
    )
    assert created.status_code == 201, created.text
    login = ui_server.api.post("/api/v1/auth/login", json={"username": name, "password": password})
    token = {"Authorization": f"Bearer {login.json()['access_token']}"}
    secret = ui_server.api.post("/api/v1/auth/totp/setup", headers=token).json()["secret"]
    totp = pyotp.TOTP(secret)
    confirmed = ui_server.api.post(
        "/api/v1/auth/totp/confirm", headers=token, json={"code": totp.now()}
    )
    assert confirmed.status_code == 200, confirmed.text

    sign_in_page = await SignInPage(page).open()
    await sign_in_page.sign_in(name, password)
    await expect(page.get_by_label("Code from your authenticator app")).to_be_visible()
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "signin-code")
    # The confirm spent this step's code; the next step's is accepted (one step of drift).
    await sign_in_page.enter_code(totp.at(time.time() + totp.interval))
    await expect(InboxPage(page).mailboxes).to_be_visible()
    await expect(page.get_by_text(f"Signed in as {name}")).to_be_visible()


async def test_graphiql_renders_from_our_own_files(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    await sign_in(page)  # GraphiQL's introspection is for signed-in callers
    await page.goto("/graphql")
    await expect(page.locator(".graphiql-container")).to_be_visible()
    await page.get_by_role("button", name="Show GraphiQL Explorer").click()
    await expect(page.get_by_text("mailboxes").first).to_be_visible()
    # A query typed in the editor runs against this server, signed in by the session.
    editor = page.get_by_role("textbox", name="Query editor")
    await editor.focus()
    await page.keyboard.press("Control+A")
    await page.keyboard.type("{ me { username } }")
    await page.keyboard.press("Control+Enter")
    await expect(page.locator(".graphiql-response")).to_contain_text('"username": "admin"')
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "graphiql")


async def test_swagger_ui_renders_from_our_own_files(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    await page.goto("/api/docs")
    await expect(page.get_by_role("heading", name="MailCue API")).to_be_visible()
    await expect(page.get_by_text("/api/v1/auth/login").first).to_be_visible()
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "swagger-ui")


async def test_search_keyboard_and_delete(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    address = new_address()
    for subject in ("Alpha report", "Beta invoice", "Gamma invoice"):
        ui_server.send(message(address, subject, f"Body of {subject}."))
    inbox = await sign_in(page)
    await inbox.open_mailbox(address)
    await expect(inbox.rows).to_have_count(3)

    # "/" focuses the search; the query goes into the URL and survives a reload.
    await page.keyboard.press("/")
    search = page.get_by_role("searchbox", name="Search this folder")
    await expect(search).to_be_focused()
    await search.fill("invoice")
    await search.press("Enter")
    await expect(inbox.rows).to_have_count(2)
    assert "q=invoice" in page.url
    await page.reload()
    await expect(inbox.rows).to_have_count(2)
    await expect(search).to_have_value("invoice")
    await assert_accessible(page)

    # j opens the first result, j the next, k goes back; "?" shows the help.
    await page.locator("body").click(position={"x": 5, "y": 5})
    await page.keyboard.press("j")
    await expect(page.get_by_role("article", name="Message")).to_contain_text("Gamma invoice")
    await page.keyboard.press("j")
    await expect(page.get_by_role("article", name="Message")).to_contain_text("Beta invoice")
    await page.keyboard.press("k")
    await expect(page.get_by_role("article", name="Message")).to_contain_text("Gamma invoice")
    await page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    await expect(help_dialog).to_be_visible()
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "shortcuts-help")
    await page.keyboard.press("Escape")
    await expect(help_dialog).to_be_hidden()

    # Delete: the message leaves the list, here and on the server.
    await page.get_by_role("button", name="Delete").click()
    await expect(inbox.row("Gamma invoice")).to_have_count(0)
    await expect(inbox.rows).to_have_count(1)
    listed = ui_server.api.get(f"/api/v1/mailboxes/{address}/emails").json()
    assert sorted(item["subject"] for item in listed["emails"]) == ["Alpha report", "Beta invoice"]


async def test_phone_width_shows_the_list_or_the_message(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    address = new_address()
    ui_server.send(message(address, "Read me on a phone", "Small screens too."))
    await page.set_viewport_size({"width": 375, "height": 740})
    inbox = await sign_in(page)
    await inbox.open_mailbox(address)
    await expect(inbox.row("Read me on a phone")).to_be_visible()
    await screenshot(page, SCREENSHOTS, "phone-list")
    view = await inbox.open_message("Read me on a phone")
    await expect(inbox.row("Read me on a phone")).to_be_hidden()
    await expect(await view.tab("Text")).to_contain_text("Small screens too.")
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "phone-message")


async def test_two_tabs_reloading_at_once_stay_signed_in(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    address = new_address()
    ui_server.send(message(address, "Two tabs", "Both stay signed in."))
    inbox = await sign_in(page)
    await inbox.open_mailbox(address)
    second = await page.context.new_page()
    await second.goto(page.url)
    await expect(InboxPage(second).row("Two tabs")).to_be_visible()
    # Both spend the refresh cookie at the same moment; one refresh at a time (Web Locks).
    await asyncio.gather(page.reload(), second.reload())
    for tab in (page, second):
        await expect(InboxPage(tab).row("Two tabs")).to_be_visible()
    await second.close()


async def test_cid_images_come_from_the_messages_own_parts(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    address = new_address()
    mail = message(
        address, "With a logo", "Logo inside.", '<p>Hi</p><img alt="logo" src="cid:logo@shop">'
    )
    html_part = mail.get_payload()[1]
    html_part.add_related(PNG, maintype="image", subtype="png", cid="<logo@shop>")
    ui_server.send(mail)

    inbox = await sign_in(page)
    await inbox.open_mailbox(address)
    view = await inbox.open_message("With a logo")
    logo = view.frame.get_by_role("img", name="logo")
    await expect(logo).to_have_attribute("src", re.compile(r"^data:image/png;base64,"))
    assert await logo.evaluate("image => image.naturalWidth") == 1


async def test_pages_in_the_dark_system_theme_are_accessible(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    await page.emulate_media(color_scheme="dark")
    address = new_address()
    ui_server.send(message(address, "Night owl", "Dark text.", "<p>Dark <b>HTML</b></p>"))
    sign_in_page = await SignInPage(page).open()
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "signin-dark")
    await sign_in_page.sign_in(*ADMIN)
    inbox = InboxPage(page)
    await inbox.open_mailbox(address)
    await expect(inbox.row("Night owl")).to_be_visible()
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "inbox-dark")
    view = await inbox.open_message("Night owl")
    await expect(view.frame.get_by_text("HTML")).to_be_visible()
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "message-html-dark")
    for tab in ("Headers", "Raw", "Parts"):
        await view.tab(tab)
        await assert_accessible(page)
    await page.goto("/api/docs")
    await expect(page.get_by_role("heading", name="MailCue API")).to_be_visible()
    await assert_accessible(page)
    await page.goto("/graphql")
    await expect(page.locator(".graphiql-container")).to_be_visible()
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "graphiql-dark")


async def test_folders_with_counts_and_a_message_moved_to_junk_shows_under_junk(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    address = new_address()
    ui_server.send(message(address, "Cheap pills", "Buy now."))
    ui_server.send(message(address, "Real news", "Hello."))
    inbox = await sign_in(page)
    await inbox.open_mailbox(address)
    folders = FolderNav(page, address)
    for name in ("Inbox", "Sent", "Drafts", "Trash", "Junk"):
        await expect(folders.link(name)).to_be_visible()
    await expect(folders.link("Inbox")).to_contain_text("2")
    await expect(inbox.rows).to_have_count(2)

    # Moved over the API while the page is open: it leaves the list and Junk counts it.
    listed = ui_server.api.get(f"/api/v1/mailboxes/{address}/emails").json()["emails"]
    uid = next(item["uid"] for item in listed if item["subject"] == "Cheap pills")
    moved = ui_server.api.post(
        f"/api/v1/mailboxes/{address}/emails/{uid}/spam", json={"folder": "INBOX"}
    )
    assert moved.status_code == 200, moved.text
    await expect(inbox.row("Cheap pills")).to_have_count(0)
    await expect(inbox.rows).to_have_count(1)
    await expect(folders.link("Junk")).to_contain_text("1")
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "folders-light")

    await folders.open("Junk")
    assert page.url.endswith("/Junk")
    await expect(inbox.rows).to_have_count(1)
    await expect(inbox.row("Cheap pills")).to_be_visible()
    view = await inbox.open_message("Cheap pills")
    await expect(await view.tab("Text")).to_contain_text("Buy now.")
    await assert_accessible(page)
    await page.get_by_label("Theme").select_option("dark")
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "junk-dark")


async def test_all_mail_lists_mail_of_every_mailbox_live(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    first, second = new_address(), new_address()
    ui_server.send(message(first, "For the first mailbox", "One."))
    inbox = await sign_in(page)
    await inbox.open_all_mail()
    assert page.url.endswith("/all")
    await expect(inbox.row("For the first mailbox")).to_contain_text(first)
    # Mail to another mailbox joins the open All mail list live, on top.
    ui_server.send(message(second, "For the second mailbox", "Two."))
    await expect(inbox.row("For the second mailbox")).to_contain_text(second, timeout=5000)
    await expect(inbox.rows.first).to_contain_text("For the second mailbox")
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "all-mail-light")
    await page.reload()  # and both come from allMail itself, not only from live changes
    await expect(inbox.row("For the first mailbox")).to_be_visible()
    await expect(inbox.row("For the second mailbox")).to_be_visible()

    # A message opens beside All mail with its own deep link; "u" returns to All mail.
    view = await inbox.open_message("For the first mailbox")
    await expect(await view.tab("Text")).to_contain_text("One.")
    assert "/all/" in page.url
    await page.keyboard.press("u")
    await page.wait_for_url(re.compile(r"/all$"))
    await page.get_by_label("Theme").select_option("dark")
    await assert_accessible(page)


async def test_connect_panel_shows_ports_and_copies_a_snippet(
    guarded: tuple[Page, Guard], ui_server: UiServer
) -> None:
    page, _ = guarded
    await page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=ui_server.base_url
    )
    ui_server.send(message(new_address(), "Connect me", "Hello."))
    await sign_in(page)
    # Reached by keyboard: focus the Connect button and press Enter.
    connect = page.get_by_role("button", name="Connect", exact=True)
    await connect.focus()
    await page.keyboard.press("Enter")
    panel = page.get_by_role("dialog", name="Connect to this server")
    await expect(panel).to_be_visible()
    ports = panel.get_by_role("table")
    smtp = ports.get_by_role("row", name=re.compile(r"^SMTP \(any recipient"))
    await expect(smtp).to_contain_text(str(ui_server.smtp_port))  # the port it listens on
    await expect(ports.get_by_role("row", name=re.compile("IMAP over TLS"))).to_contain_text(
        "Implicit TLS"
    )
    await expect(ports.get_by_role("row")).to_have_count(8)  # a header and seven listeners
    await expect(panel).to_contain_text(ui_server.base_url)  # the API address is this page's
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "connect-light")

    await panel.get_by_role("button", name="Copy Python smtplib snippet").click()
    await expect(panel.get_by_role("status").filter(has_text="Copied")).to_be_visible()
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == await panel.get_by_label("Python smtplib snippet", exact=True).inner_text()
    assert f'smtplib.SMTP("127.0.0.1", {ui_server.smtp_port})' in copied
    # The snippet works as it is: run against this server, it delivers.
    subject = f"Sent by the snippet {uuid.uuid4().hex[:6]}"
    exec(compile(copied.replace("Hello from MailCue", subject), "snippet", "exec"), {})  # noqa: S102 - our own snippet
    listed = ui_server.api.get("/api/v1/mailboxes/alice@example.com/emails").json()
    assert subject in [item["subject"] for item in listed["emails"]]

    await page.emulate_media(color_scheme="dark")  # the system theme turns dark
    await assert_accessible(page)
    await screenshot(page, SCREENSHOTS, "connect-dark")
    await page.keyboard.press("Escape")
    await expect(panel).to_be_hidden()
