"""The demo page against a server with authentication on: it asks for a token when the
API answers 401, keeps it for the tab only, sends it with every request (never in a
URL), and shows what a token may not do instead of failing.

Every wait is one of Playwright's auto-retrying expectations; nothing sleeps.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import ConsoleMessage, Locator, Page, Request, WebSocket, expect

from aiohttp_realtime import BearerTokens, CloseCode, Principal, close_all
from backend.app import Config, build_app
from tests.browser.conftest import FAST_CLIENT, ConsoleWatch, Demo

ALICE = "alice-token-0123456789abcdef"  # read, write, terminals
BOB = "bob-token-0123456789abcdefgh"  # read, write, terminals
WALLBOARD = "wallboard-token-0123456789ab"  # read only
WRONG = "no-such-token-0123456789abcd"
TOKENS = {
    ALICE: Principal("alice", frozenset({"read", "write", "terminals"})),
    BOB: Principal("bob", frozenset({"read", "write", "terminals"})),
    WALLBOARD: Principal("wallboard", frozenset({"read"})),
}
#: Where the page keeps its token (frontend-client/demo/token.ts).
TOKEN_KEY = "realtime-demo.token"

#: Chromium logs every HTTP error response a page receives as a console error, with
#: the status in the text and the URL in the location.
FAILED_LOAD = re.compile(r"^Failed to load resource: the server responded with a status of (\d+)")


@dataclass
class AuthConsoleWatch(ConsoleWatch):
    """Also tolerates the logs of refused API requests, by status and path: a 401 is how
    the page learns that it must sign in. Anything else still fails the test."""

    allowed_refusals: set[tuple[int, str]] = field(default_factory=lambda: {(401, "/api/sessions")})

    def on_console(self, message: ConsoleMessage) -> None:
        failed = FAILED_LOAD.match(message.text)
        if message.type == "error" and failed is not None:
            path = urlsplit(message.location.get("url", "")).path
            if (int(failed.group(1)), path) in self.allowed_refusals:
                return
        super().on_console(message)


@pytest.fixture
def console() -> ConsoleWatch:  # overrides conftest's, for this module's pages
    return AuthConsoleWatch()


@pytest.fixture
async def secured(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> AsyncIterator[Demo]:
    """The demo app with authentication on; its `api` helper sends Alice's token."""
    app = build_app(Config(simulate=False, tokens=BearerTokens(TOKENS)))
    server = await aiohttp_server(app, host="127.0.0.1")
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ALICE}"}) as http:
        yield Demo(app, str(server.make_url("")).rstrip("/"), http)


def row(page: Page, session_id: str) -> Locator:
    return page.locator(f'#sessions-body tr[data-session-id="{session_id}"]')


def record_urls(page: Page) -> list[str]:
    """Every URL the page requests from now on, its WebSockets' included."""
    urls: list[str] = []

    def on_request(request: Request) -> None:
        urls.append(request.url)

    def on_websocket(socket: WebSocket) -> None:
        urls.append(socket.url)

    page.on("request", on_request)
    page.on("websocket", on_websocket)
    return urls


async def open_signed_out(page: Page, base_url: str) -> None:
    await page.goto(f"{base_url}/?{FAST_CLIENT}")
    await expect(page.locator("#auth-panel")).to_be_visible()
    await expect(page.locator("#content")).to_be_hidden()


async def sign_in(page: Page, token: str) -> None:
    await page.get_by_label("Access token").fill(token)
    await page.get_by_role("button", name="Sign in").click()


async def signed_in(page: Page, who: str) -> None:
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#auth-panel")).to_be_hidden()
    await expect(page.locator("#principal")).to_have_text(who)


async def test_page_asks_for_a_token_then_shows_live_sessions(secured: Demo, page: Page) -> None:
    before = await secured.create_session("Created before signing in")
    urls = record_urls(page)
    await open_signed_out(page, secured.url)
    await expect(page.locator("#status")).to_have_text("Not connected")
    assert not [url for url in urls if "/api/realtime" in url], "the page connected without a token"

    await sign_in(page, WRONG)
    await expect(page.locator("#auth-error")).to_contain_text("did not accept the token")
    await expect(page.locator("#auth-panel")).to_be_visible()
    await expect(page.locator("#content")).to_be_hidden()
    assert not [url for url in urls if "/api/realtime" in url]
    assert await page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None

    await sign_in(page, ALICE)
    await signed_in(page, "alice")
    await expect(page.locator("#auth-error")).to_have_text("")
    await expect(row(page, before["id"]).locator(".title")).to_have_text("Created before signing in")
    assert [conn.principal for conn in secured.hub.connections] == [TOKENS[ALICE]]

    # Live: a session created through the API (with a token) appears without a reload...
    added = await secured.create_session("Created through the API")
    await expect(row(page, added["id"])).to_be_visible()
    # ...and so does one the page writes itself: its POSTs carry the token and JSON.
    await page.get_by_label("New session title").fill("Created on the page")
    await page.get_by_role("button", name="Create session").click()
    await expect(page.locator("#sessions-body tr")).to_have_count(3)
    await expect(page.locator("#notice")).to_have_text("")

    # Kept for the tab only, and never in a URL.
    assert await page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") == ALICE
    assert await page.evaluate("localStorage.length") == 0
    assert any("/api/sessions" in url for url in urls) and any("/api/realtime" in url for url in urls)
    leaked = [url for url in urls if ALICE in url or WRONG in url]
    assert leaked == [], "a token was put in a URL"
    assert ALICE not in page.url


async def test_a_reload_keeps_the_token_and_signing_out_forgets_it(secured: Demo, page: Page) -> None:
    await open_signed_out(page, secured.url)
    await sign_in(page, ALICE)
    await signed_in(page, "alice")

    await page.reload()
    await signed_in(page, "alice")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("#auth-panel")).to_be_visible()
    await expect(page.locator("#account")).to_be_hidden()
    await expect(page.locator("#status")).to_have_text("Not connected")
    assert await page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None
    await page.reload()
    await expect(page.locator("#auth-panel")).to_be_visible()

    # Another token, on the same client: it counts from the next connect.
    await sign_in(page, BOB)
    await signed_in(page, "bob")
    assert [conn.principal for conn in secured.hub.connections] == [TOKENS[BOB]]


async def test_a_changed_token_is_used_on_the_next_reconnect(
    secured: Demo, page: Page, console: ConsoleWatch
) -> None:
    console.allow_ws_failures = True  # the refused token's handshake
    await open_signed_out(page, secured.url)
    await sign_in(page, ALICE)
    await signed_in(page, "alice")

    # The client asks for the token before every connect: a new one counts at once...
    await page.evaluate(f"sessionStorage.setItem('{TOKEN_KEY}', '{BOB}')")
    await close_all(secured.hub, CloseCode.GOING_AWAY, "restarting")
    await signed_in(page, "bob")

    # ...and one the server refuses (expired, revoked) brings the form back.
    await page.evaluate(f"sessionStorage.setItem('{TOKEN_KEY}', '{WRONG}')")
    await close_all(secured.hub, CloseCode.GOING_AWAY, "restarting")
    await expect(page.locator("#auth-panel")).to_be_visible()
    await expect(page.locator("#auth-error")).to_contain_text("did not accept the token")
    await expect(page.locator("#status")).to_have_text("Not connected")
    assert await page.evaluate(f"sessionStorage.getItem('{TOKEN_KEY}')") is None


async def test_a_read_only_token_reads_and_is_told_why_it_cannot_write(
    secured: Demo, page: Page, console: AuthConsoleWatch
) -> None:
    console.allowed_refusals.add((403, "/api/sessions"))
    session = await secured.create_session("Visible to the wallboard")
    await open_signed_out(page, secured.url)
    await sign_in(page, WALLBOARD)
    await signed_in(page, "wallboard")
    await expect(row(page, session["id"])).to_be_visible()

    await page.get_by_label("New session title").fill("Not allowed")
    await page.get_by_role("button", name="Create session").click()
    await expect(page.locator("#notice")).to_have_text(
        "Could not save: forbidden: this token may not change anything"
    )
    assert [s["title"] for s in await secured.api("GET", "/api/sessions")] == ["Visible to the wallboard"]
    # Still live, and still showing changes.
    await secured.api("PATCH", f"/api/sessions/{session['id']}", {"state": "running"})
    await expect(row(page, session["id"])).to_have_attribute("data-state", "running")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")


async def test_without_authentication_the_page_asks_for_nothing(demo: Demo, page: Page) -> None:
    urls = record_urls(page)
    session = await demo.create_session("Open to all")
    await page.goto(f"{demo.url}/?{FAST_CLIENT}")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    await expect(row(page, session["id"])).to_be_visible()
    await expect(page.locator("#auth-panel")).to_be_hidden()
    await expect(page.locator("#account")).to_be_hidden()
    assert [conn.principal for conn in demo.hub.connections] == [None]
    assert any(url.endswith("/api/sessions") for url in urls)
