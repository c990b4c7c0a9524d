"""A real ``mailcue serve`` and Debian's Chromium, for the web UI's browser tests.

Chromium is driven by Playwright (``executable_path``: browsers cannot be downloaded
here). Every request a page makes to anything but 127.0.0.1 is aborted and recorded,
and a test fails if one was attempted; so are script errors and CSP violations.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    async_playwright,
)

from processes import ServeProcess, cli_env
from webui.harness import ADMIN, CHROMIUM, CHROMIUM_ARGS, Guard, UiServer


@pytest.fixture(scope="session")
def chromium() -> Path:
    if not CHROMIUM.exists():
        reason = f"{CHROMIUM} is absent (apt-get install chromium; .ci/run installs it)"
        if os.environ.get("MAILCUE_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return CHROMIUM


@pytest.fixture(scope="session")
def ui_server(chromium: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[UiServer]:
    data_dir = tmp_path_factory.mktemp("webui-node")
    with ServeProcess(cli_env(data_dir), data_dir) as serve:
        base_url = serve.wait_listening()
        smtp_port = serve.listener_port("smtp")
        with httpx.Client(base_url=base_url, timeout=10) as api:
            login = api.post(
                "/api/v1/auth/login", json={"username": ADMIN[0], "password": ADMIN[1]}
            )
            login.raise_for_status()
            api.headers["Authorization"] = f"Bearer {login.json()['access_token']}"
            api.cookies.clear()
            yield UiServer(base_url, smtp_port, api)
        serve.terminate()


@pytest.fixture(scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=str(chromium), args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        await launched.close()


async def _guard_route(route: Route, guard: Guard) -> None:
    if urlsplit(route.request.url).hostname == "127.0.0.1" or route.request.url.startswith(
        ("data:", "blob:", "about:")
    ):
        await route.continue_()
    else:
        guard.outside.append(route.request.url)
        await route.abort()


@pytest.fixture
async def guarded(browser: Browser, ui_server: UiServer) -> AsyncIterator[tuple[Page, Guard]]:
    """A fresh browser context (no cookies) with its one page, and the guard watching it."""
    guard = Guard()
    context: BrowserContext = await browser.new_context(
        base_url=ui_server.base_url, viewport={"width": 1280, "height": 800}, accept_downloads=True
    )
    await context.route("**/*", lambda route: _guard_route(route, guard))
    page = await context.new_page()
    page.on("pageerror", lambda error: guard.errors.append(str(error)))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and "Content Security Policy" in message.text:
            guard.csp_violation(message.location.get("url", ""), message.text)

    page.on("console", on_console)
    yield page, guard
    await context.close()
    guard.check()
