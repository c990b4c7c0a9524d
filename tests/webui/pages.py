"""Page objects: the UI's pages as a user sees them (labels, roles, text), not its markup."""

from __future__ import annotations

from pathlib import Path

from axe_playwright_python.async_playwright import Axe
from playwright.async_api import FrameLocator, Locator, Page, expect

SERIOUS = {"serious", "critical"}
_axe = Axe()


async def assert_accessible(page: Page) -> None:
    """axe-core finds no serious or critical violation on what the page shows now."""
    results = await _axe.run(page)
    violations = [
        f"{item['id']} ({item['impact']}): {[node['target'] for node in item['nodes']][:5]}"
        for item in results.response["violations"]
        if item["impact"] in SERIOUS
    ]
    assert not violations, violations


async def screenshot(page: Page, directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.png"
    await page.screenshot(path=str(path))
    return path


class SignInPage:
    def __init__(self, page: Page) -> None:
        self.page = page

    async def open(self) -> SignInPage:
        await self.page.goto("/")
        await expect(self.page.get_by_role("button", name="Sign in")).to_be_visible()
        return self

    async def sign_in(self, username: str, password: str) -> None:
        await self.page.get_by_label("Username").fill(username)
        await self.page.get_by_label("Password").fill(password)
        await self.page.get_by_role("button", name="Sign in").click()

    async def enter_code(self, code: str) -> None:
        await self.page.get_by_label("Code from your authenticator app").fill(code)
        await self.page.get_by_role("button", name="Verify").click()


class InboxPage:
    def __init__(self, page: Page) -> None:
        self.page = page

    @property
    def mailboxes(self) -> Locator:
        return self.page.get_by_role("navigation", name="Mailboxes")

    def mailbox_link(self, address: str) -> Locator:
        return self.mailboxes.get_by_role("link", name=address)

    async def open_mailbox(self, address: str) -> None:
        await self.mailbox_link(address).click()
        await expect(self.page.get_by_role("heading", name=address)).to_be_visible()

    @property
    def rows(self) -> Locator:
        return self.page.get_by_role("list", name="Messages").get_by_role("listitem")

    def row(self, subject: str) -> Locator:
        return self.rows.filter(has_text=subject)

    async def open_message(self, subject: str) -> MessageView:
        await self.row(subject).get_by_role("link").click()
        view = MessageView(self.page)
        await expect(view.article.get_by_role("heading", name=subject)).to_be_visible()
        return view

    async def open_all_mail(self) -> None:
        await self.mailboxes.get_by_role("link", name="All mail").click()
        await expect(self.page.get_by_role("heading", name="All mail")).to_be_visible()

    async def sign_out(self) -> None:
        await self.page.get_by_role("button", name="Sign out").click()


class MessageView:
    def __init__(self, page: Page) -> None:
        self.page = page
        self.article = page.get_by_role("article", name="Message")

    async def tab(self, name: str) -> Locator:
        await self.article.get_by_role("tab", name=name, exact=True).click()
        return self.article.get_by_role("tabpanel")

    @property
    def frame(self) -> FrameLocator:
        return self.page.frame_locator("iframe[title^='Message:']")

    @property
    def load_remote(self) -> Locator:
        return self.page.get_by_role("button", name="Load remote content")


class FolderNav:
    """The open mailbox's folders in the shell, each a link with its icon and count."""

    def __init__(self, page: Page, address: str) -> None:
        self.page = page
        self.list = page.get_by_role("list", name=f"Folders of {address}")

    def link(self, name: str) -> Locator:
        return self.list.get_by_role("link", name=name)

    async def open(self, name: str) -> None:
        await self.link(name).click()
        await expect(self.link(name)).to_have_attribute("aria-current", "page")
