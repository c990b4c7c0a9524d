"""What the web UI's browser tests share: the server under test, Chromium's flags, the guard."""

from __future__ import annotations

import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import httpx

from processes import REPO_ROOT

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN = ("admin", "mailcue")  # test mode's default admin
SCREENSHOTS = REPO_ROOT / "tests" / "webui" / "screenshots"


@dataclass
class UiServer:
    base_url: str
    smtp_port: int
    api: httpx.Client

    def send(self, message: EmailMessage) -> None:
        """Deliver over real SMTP, as an application would."""
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as smtp:
            smtp.send_message(message)


@dataclass
class Guard:
    """What a page tried that it must not: leave loopback, throw, break its CSP."""

    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # A test that shows hostile mail expects the mail frame's own policy to block things:
    # loads reported from about:srcdoc, and its inline handlers (reported against our
    # script, which made the frame).
    mail_blocks_expected: bool = False

    def csp_violation(self, url: str, text: str) -> None:
        in_mail = url == "about:srcdoc" or "inline event handler" in text
        if not (self.mail_blocks_expected and in_mail):
            self.errors.append(f"{url}: {text}")

    def check(self) -> None:
        assert not self.outside, f"requests outside 127.0.0.1: {self.outside}"
        assert not self.errors, f"page errors: {self.errors}"
