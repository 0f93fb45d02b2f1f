"""Browser tests: Debian's Chromium driven by Playwright against `tenancy serve` on loopback.

The browser is the system's (/usr/bin/chromium, installed by .ci/run); Playwright never downloads
one. Each test gets a fresh browser context (no cookies), and `snap` saves a screenshot of each
page under tests/artifacts/ (git-ignored) for people to look at. `phone` is a page in a 390x844
context, as on a phone, for the mobile tests."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, Playwright, ViewportSize, expect, sync_playwright

from tenancy.domain.ids import new_transaction_id
from tenancy.payments.simulator import build_itn, encode_form

from servers import (
    MailCatcher,
    RunningServer,
    cli_env,
    free_port,
    server_env,
    start_server,
    stop_server,
    temporary_password_in,
    tenancy,
)

CHROMIUM = os.environ.get("TENANCY_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
# Headless, as root in CI, on a machine whose network is closed: no background connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
TIMEOUT_MS = 15_000
WCAG_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]
DESKTOP = ViewportSize(width=1200, height=900)
PHONE = ViewportSize(width=390, height=844)  # a current phone's CSS pixels (iPhone 12 to 15)
_axe = Axe()

# What makes the page wider than its viewport, outermost first: an element that reaches past the
# right edge while its parent does not, or text that runs out of its element past the edge (a long
# email with nowhere to break), in no box of its own that scrolls or clips (the page's own <html>
# and <body> do not count: hiding their overflow is no fix).
_OVERFLOW_SCRIPT = """() => {
  const width = document.documentElement.clientWidth;
  const contained = (start) => {
    for (let box = start; box && box !== document.body; box = box.parentElement) {
      if (["auto", "scroll", "hidden", "clip"].includes(getComputedStyle(box).overflowX)) return true;
    }
    return false;
  };
  const tooWide = (element) => {
    const box = element.getBoundingClientRect();
    return (box.width > 0 || box.height > 0) && box.right > width + 0.5;
  };
  const name = (element) => element.tagName.toLowerCase() + (element.id ? "#" + element.id : "")
    + [...element.classList].map((cls) => "." + cls).join("");
  const path = (element) => {
    const names = [];
    for (let at = element; at && at !== document.body; at = at.parentElement) names.unshift(name(at));
    return names.join(" > ");
  };
  const quote = (text) => (text || "").trim().replace(/\\s+/g, " ").slice(0, 60);
  const culprits = [];
  for (const element of document.body.querySelectorAll("*")) {
    if (!tooWide(element) || contained(element.parentElement)) continue;
    if (element.parentElement !== document.body && tooWide(element.parentElement)) continue;
    const right = Math.round(element.getBoundingClientRect().right);
    culprits.push(`${path(element)} reaches ${right}px: "${quote(element.textContent)}"`);
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const range = document.createRange();
  for (let text = walker.nextNode(); text; text = walker.nextNode()) {
    const element = text.parentElement;
    if (!text.textContent.trim() || tooWide(element) || contained(element)) continue;
    range.selectNodeContents(text);
    const right = Math.max(0, ...[...range.getClientRects()].map((box) => box.right));
    if (right > width + 0.5) {
      culprits.push(`the text of ${path(element)} runs out to ${Math.round(right)}px: "${quote(text.textContent)}"`);
    }
  }
  return {scrollWidth: document.documentElement.scrollWidth, width: window.innerWidth, culprits};
}"""


def horizontal_overflow(page: Page) -> list[str]:
    """Why the page scrolls sideways at its viewport's width (empty when it does not): the page is
    wider than the window, or an element reaches past the window's right edge outside a scroll box."""
    found = page.evaluate(_OVERFLOW_SCRIPT)
    problems = list(found["culprits"])
    if found["scrollWidth"] > found["width"]:
        problems.insert(0, f"the page is {found['scrollWidth']}px wide in a {found['width']}px window")
    return problems


# Module-scoped: Playwright's sync API keeps an event loop running in this thread while it is
# open, which would break later tests (in other directories) that call asyncio.run().
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@dataclass
class Snapshots:
    """Numbered screenshots of one test, in the order taken; each page shot is also checked
    with axe-core against WCAG 2.1 A and AA (labels, contrast, landmarks, names), and for
    horizontal overflow at its viewport's width (no page may scroll sideways)."""

    prefix: str
    taken: list[Path] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    overflows: list[str] = field(default_factory=list)

    def __call__(self, page: Page, name: str) -> Path:
        path = ARTIFACTS / f"{self.prefix}-{len(self.taken) + 1:02d}-{name}.png"
        self.overflows += [f"{name}: {problem}" for problem in horizontal_overflow(page)]
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        results = _axe.run(page, options={"runOnly": {"type": "tag", "values": WCAG_TAGS}})
        self.violations += [f"{name}: {violation['id']}: {violation['help']}"
                            for violation in results.response["violations"]]  # fmt: skip
        return path


@pytest.fixture
def snap(request: pytest.FixtureRequest) -> Iterator[Snapshots]:
    ARTIFACTS.mkdir(exist_ok=True)
    prefix = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name).strip("-")
    for old in ARTIFACTS.glob(f"{prefix}-*.png"):
        old.unlink()
    snapshots = Snapshots(prefix)
    yield snapshots
    assert snapshots.violations + snapshots.overflows == []


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    yield from _checked_page(browser, DESKTOP)


@pytest.fixture
def phone(browser: Browser) -> Iterator[Page]:
    """A page in a 390x844 context, as on a phone."""
    yield from _checked_page(browser, PHONE)


def _checked_page(browser: Browser, viewport: ViewportSize) -> Iterator[Page]:
    """A page in a fresh context (no cookies) that must show no console error (a CSP violation
    or a script error shows up as one)."""
    context = browser.new_context(viewport=viewport, locale="en-ZA")
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    problems: list[str] = []
    # A CSP violation or a script error shows up as a console error: the pages must have none.
    opened.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    opened.on("pageerror", lambda error: problems.append(str(error)))
    yield opened
    context.close()
    assert [problem for problem in problems if "status of 40" not in problem] == []


@pytest.fixture(scope="module")
def web_server(
    tmp_path_factory: pytest.TempPathFactory, smtp_server: tuple[MailCatcher, int]
) -> Iterator[RunningServer]:
    """`tenancy serve` in offline PayFast mode (the checkout's "Simulate payment"), mail to SMTP."""
    home = tmp_path_factory.mktemp("tenancy-web")
    env = server_env(home, free_port(), smtp_server[1], free_port(), TENANCY_PAYFAST_MODE="offline")
    running = start_server(home, env)
    yield running
    stop_server(running)
    assert "Traceback" not in running.log_text()


def email_to(catcher: MailCatcher, address: str, subject_part: str, timeout: float = 15) -> str:
    """The text of the newest email to `address` whose subject contains `subject_part`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in reversed(catcher.to(address)):
            if subject_part in message["Subject"]:
                part = message.get_payload(0) if message.is_multipart() else message
                return str(part.get_payload(decode=True).decode())
        time.sleep(0.05)
    raise AssertionError(f"no email to {address} about {subject_part!r}")


def buy(server: RunningServer, catcher: MailCatcher, email: str, plan: str = "starter") -> str:
    """A paid, provisioned tenant for `email` (a signed ITN posted to the server, as PayFast
    would); the temporary password from its welcome email."""
    services = server.services()
    try:
        price = services.plans.get(plan).price_zar
        passphrase = services.settings.passphrase
        merchant_id = services.settings.payfast_merchant_id
    finally:
        services.close()
    itn = build_itn(transaction_id=new_transaction_id(), email=email, plan=plan, amount=price,
                    merchant_id=merchant_id, passphrase=passphrase)  # fmt: skip
    response = httpx.post(f"{server.base_url}/payments/payfast/itn", content=encode_form(itn),
                          headers={"content-type": "application/x-www-form-urlencoded"})  # fmt: skip
    assert response.status_code == 200, response.text
    return temporary_password_in(email_to(catcher, email, "Welcome"))


def sign_in_first_time(page: Page, base_url: str, email: str, temporary: str, chosen: str) -> None:
    """Signs in with a temporary password and answers the new-password challenge."""
    page.goto(f"{base_url}/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(temporary)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Choose a new password")).to_be_visible()
    page.get_by_label("New password", exact=True).fill(chosen)
    page.get_by_label("Repeat the new password").fill(chosen)
    page.get_by_role("button", name="Set password and continue").click()


def invite_and_sign_in_operator(
    page: Page, server: RunningServer, smtp_server: tuple[MailCatcher, int], email: str, chosen: str
) -> None:
    """An operator invited with the real `tenancy ops add-operator`, signed in for the first time
    with the temporary password from the invitation email, having chosen `chosen`."""
    catcher, smtp_port = smtp_server
    invited = tenancy(cli_env(server.home, TENANCY_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}"),
                      "ops", "add-operator", email)  # fmt: skip
    assert invited.returncode == 0, invited.stderr
    temporary = temporary_password_in(email_to(catcher, email, "operations console"))
    sign_in_first_time(page, server.base_url, email, temporary, chosen)
