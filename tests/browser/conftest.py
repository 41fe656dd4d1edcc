"""Fixtures for the browser tests: the demo app in-process, a cuttable proxy in front
of it, and a headless Debian Chromium (driven by Playwright's async API in the same
event loop as the server, so a test can reach into the hub between page actions).

Chromium comes from Debian (`scripts/setup-browser`), never from `playwright install`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, ConsoleMessage, Page, async_playwright, expect

from aiohttp_realtime import HUB_KEY, Hub
from backend.api import SERVICE_KEY
from backend.app import Config, build_app
from backend.service import SessionService
from tests.browser.proxy import CuttableProxy

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Client settings that make an outage cost seconds, not the production defaults' minutes.
FAST_CLIENT = "backoff_ms=100&backoff_cap_ms=800&ping_ms=500&pong_timeout_ms=1000&connect_timeout_ms=2000"

#: Chromium logs every failed WebSocket handshake as a console error. They are
#: expected while a test holds the network down, and only then.
#: What Chromium logs when the network is cut on purpose: a refused WebSocket handshake,
#: and - the client falling back to SSE after failed upgrades - a stream or POST that
#: could not be sent while offline.
WS_FAILED = re.compile(
    r"^WebSocket connection to 'ws://127\.0\.0\.1:\d+/api/realtime' failed"
    r"|^Failed to load resource: net::ERR_(INTERNET_DISCONNECTED|NETWORK_CHANGED)$"
)

expect.set_options(timeout=10_000)


@dataclass
class Demo:
    """The running demo app: its URL, its service and hub, and an HTTP client for the API."""

    app: web.Application
    url: str
    http: aiohttp.ClientSession

    @property
    def service(self) -> SessionService:
        return self.app[SERVICE_KEY]

    @property
    def hub(self) -> Hub:
        return self.app[HUB_KEY]

    async def api(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        async with self.http.request(method, f"{self.url}{path}", json=body) as resp:
            assert resp.status == status, await resp.text()
            return None if resp.status == 204 else await resp.json()

    async def create_session(self, title: str) -> dict[str, Any]:
        return await self.api("POST", "/api/sessions", {"title": title}, status=201)

    async def post_message(self, session_id: str, text: str) -> dict[str, Any]:
        body = {"role": "user", "text": text}
        return await self.api("POST", f"/api/sessions/{session_id}/messages", body, status=201)


@dataclass
class ConsoleWatch:
    """Console errors and uncaught exceptions of a page; the test fails on any.

    `allow_ws_failures` tolerates Chromium's own log of a refused WebSocket
    handshake, and of a request failed while offline (`WS_FAILED`; nothing else), for
    tests that cut the network on purpose."""

    errors: list[str] = field(default_factory=list)
    allow_ws_failures: bool = False

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console.error: {message.text}")

    def on_page_error(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")

    def unexpected(self) -> list[str]:
        return [
            e
            for e in self.errors
            if not (self.allow_ws_failures and WS_FAILED.match(e.removeprefix("console.error: ")))
        ]


@pytest.fixture
async def demo(aiohttp_server: Callable[..., Awaitable[TestServer]]) -> AsyncIterator[Demo]:
    app = build_app(Config(simulate=False))
    server = await aiohttp_server(app, host="127.0.0.1")
    async with aiohttp.ClientSession() as http:
        yield Demo(app, str(server.make_url("")).rstrip("/"), http)


def serve_through(demo: Demo, relay_port: int) -> None:
    """The page reaches the server through a relay on `relay_port`, as through a reverse
    proxy: its Host and Origin name the relay's port, which must be configured (never
    guessed)."""
    host = demo.url.removeprefix("http://").rsplit(":", 1)[0]
    via = f"{host}:{relay_port}"
    hub = demo.hub
    hub.settings = dataclasses.replace(
        hub.settings,
        allowed_hosts=frozenset({via, demo.url.removeprefix("http://")}),
        allowed_origins=frozenset({f"http://{via}", demo.url}),
    )


@pytest.fixture
async def proxy(demo: Demo) -> AsyncIterator[CuttableProxy]:
    host, port = demo.url.removeprefix("http://").rsplit(":", 1)
    relay = CuttableProxy(host, int(port))
    await relay.start()
    serve_through(demo, relay.port)
    yield relay
    await relay.close()


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup-browser (installs Debian's chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


@pytest.fixture
def console() -> ConsoleWatch:
    return ConsoleWatch()


@pytest.fixture
async def page(browser: Browser, console: ConsoleWatch) -> AsyncIterator[Page]:
    context = await browser.new_context(
        viewport={"width": 1280, "height": 760}, locale="en-GB", timezone_id="UTC"
    )
    page = await context.new_page()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)
    yield page
    await context.close()
    assert console.unexpected() == [], "the page logged errors"
