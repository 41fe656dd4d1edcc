"""The demo page through a browser's life (issue 21, item 4): offline and back, away and
back through the back/forward cache, hidden and shown with `pauseWhenHidden`.

The page waits ten minutes between reconnect attempts here (`PATIENT`, and `Math.random`
pinned to the top of every jitter window), so only the client's reaction to the page's
events can bring it back within an expectation's 10 s. What the server holds is read from
its `/metrics` (process-wide gauges: compared with a scrape taken before the page opened)
and from the hub. Every wait is an expectation or a poll until a value; the only sleep is
the ten seconds offline, which are the scenario itself.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, async_playwright, expect
from prometheus_client.parser import text_string_to_metric_families

from tests.browser.conftest import CHROMIUM_ARGS, ConsoleWatch, Demo

#: Ten minutes between attempts: a reconnect within seconds is the page events' doing.
PATIENT = "backoff_ms=600000&backoff_cap_ms=600000&ping_ms=500&pong_timeout_ms=1000&connect_timeout_ms=2000"

#: Every jitter draw at the top of its window (the first backoff delay too), so the
#: patient page never gets lucky.
NO_LUCK = "Math.random = () => 0.999999;"

#: Playwright cannot hide a headless tab: `document.visibilityState` is overridden and
#: `visibilitychange` dispatched as a browser would, by `window.__setVisibility(state)`.
VISIBILITY_SWITCH = """(() => {
  let state = "visible";
  Object.defineProperty(Document.prototype, "visibilityState", { configurable: true, get: () => state });
  Object.defineProperty(Document.prototype, "hidden", { configurable: true, get: () => state === "hidden" });
  window.__setVisibility = (next) => {
    state = next;
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();"""


def row(page: Page, session_id: str) -> Locator:
    return page.locator(f'#sessions-body tr[data-session-id="{session_id}"]')


async def gauges(demo: Demo) -> dict[str, float]:
    """The server's `realtime_connections` and `realtime_subscriptions` (all patterns)."""
    async with demo.http.get(f"{demo.url}/metrics") as resp:
        assert resp.status == 200
        text = await resp.text()
    totals = {"realtime_connections": 0.0, "realtime_subscriptions": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in totals:
                totals[sample.name] += sample.value
    return totals


async def until(demo: Demo, name: str, wanted: Callable[[float], bool], base: dict[str, float]) -> float:
    """Poll /metrics until `wanted(gauge - its value in base)`; fail after 10 s."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        value = (await gauges(demo))[name] - base[name]
        if wanted(value):
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{name} stayed at {value} (relative to before the page)")
        await asyncio.sleep(0.05)


async def snapshots(page: Page) -> int:
    return int(await page.locator("#status").get_attribute("data-snapshots") or "0")


async def connection(page: Page) -> str | None:
    return await page.locator("#status").get_attribute("data-connection")


async def open_live(page: Page, url: str) -> None:
    await page.goto(url)
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#status")).to_have_attribute("data-snapshots", "1")


@pytest.fixture
async def bfcache_page(chromium: Path, console: ConsoleWatch) -> AsyncIterator[Page]:
    """A page in a Chromium whose back/forward cache is on: Playwright turns it off by
    default (`--disable-back-forward-cache`), so that `go_back` always loads."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(chromium),
            args=CHROMIUM_ARGS,
            ignore_default_args=["--disable-back-forward-cache"],
        )
        context = await browser.new_context(viewport={"width": 1280, "height": 760}, locale="en-GB")
        page = await context.new_page()
        page.on("console", console.on_console)
        page.on("pageerror", console.on_page_error)
        yield page
        await context.close()
        await browser.close()
    assert console.unexpected() == [], "the page logged errors"


async def test_ten_seconds_offline_then_online_resyncs_at_once(
    demo: Demo, page: Page, console: ConsoleWatch
) -> None:
    console.allow_ws_failures = True
    await page.add_init_script(NO_LUCK)
    kept = await demo.create_session("Kept")
    base = await gauges(demo)
    await open_live(page, f"{demo.url}/?{PATIENT}")
    await expect(row(page, kept["id"])).to_be_visible()
    first = await connection(page)
    await page.evaluate("window.loadedOnce = true")  # gone if the page reloads

    await page.context.set_offline(True)
    await expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    added = await demo.create_session("Created while offline")
    await demo.api("PATCH", f"/api/sessions/{kept['id']}", {"state": "running"})
    await asyncio.sleep(10)  # the scenario: ten seconds without a network
    await expect(page.locator("#sessions-body tr")).to_have_count(1)
    await expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")

    await page.context.set_offline(False)
    # Back within the expectation's 10 s although the next attempt was ten minutes away.
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#status")).to_have_attribute("data-snapshots", "2")  # a fresh one
    await expect(row(page, added["id"])).to_be_visible()
    await expect(row(page, kept["id"])).to_have_attribute("data-state", "running")
    assert await connection(page) not in (None, first)
    assert await page.evaluate("window.loadedOnce === true"), "the page was reloaded"

    # Live again, not just resynced once; and the server holds this one socket only (an
    # emulated outage drops packets, so the old one lingers until the network is back).
    await demo.api("PATCH", f"/api/sessions/{added['id']}", {"state": "done"})
    await expect(row(page, added["id"])).to_have_attribute("data-state", "done")
    await until(demo, "realtime_connections", lambda n: n == 1, base)
    assert [conn.id for conn in demo.hub.connections] == [await connection(page)]


async def test_back_forward_cache_away_and_back_resyncs_with_one_socket(
    demo: Demo, bfcache_page: Page
) -> None:
    page = bfcache_page
    await page.add_init_script(NO_LUCK)
    kept = await demo.create_session("Kept")
    base = await gauges(demo)
    await open_live(page, f"{demo.url}/?{PATIENT}")
    await expect(row(page, kept["id"])).to_be_visible()
    first = await connection(page)
    await until(demo, "realtime_connections", lambda n: n == 1, base)
    await page.evaluate("window.keptInCache = true")  # survives a restore, not a reload

    await page.goto("about:blank")
    # pagehide closed the socket (1000): the server sees it go while the page is away.
    await until(demo, "realtime_connections", lambda n: n == 0, base)
    added = await demo.create_session("Created while away")

    await page.go_back(wait_until="commit")  # a restore fires no load event
    assert await page.evaluate("window.keptInCache === true"), "not restored from the back/forward cache"
    await expect(page.locator("#status")).not_to_have_attribute("data-connection", first or "")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#status")).to_have_attribute("data-snapshots", "2")
    await expect(row(page, added["id"])).to_be_visible()

    # One socket for the page on the server, and it is the live one.
    await demo.api("PATCH", f"/api/sessions/{kept['id']}", {"state": "waiting"})
    await expect(row(page, kept["id"])).to_have_attribute("data-state", "waiting")
    assert await until(demo, "realtime_connections", lambda n: n >= 1, base) == 1
    assert [conn.id for conn in demo.hub.connections] == [await connection(page)]


async def test_a_hidden_page_drops_its_subscriptions_and_resyncs_when_shown(demo: Demo, page: Page) -> None:
    await page.add_init_script(VISIBILITY_SWITCH)
    kept = await demo.create_session("Kept")
    base = await gauges(demo)
    await open_live(page, f"{demo.url}/?pause_when_hidden_ms=500")
    await expect(row(page, kept["id"])).to_have_class("selected")  # its activity topic too
    (conn,) = demo.hub.connections
    topics = await until(demo, "realtime_subscriptions", lambda n: n == 3, base)
    first = await connection(page)

    await page.evaluate("window.__setVisibility('hidden')")
    # After half a second hidden: every topic unsubscribed, the socket kept.
    await until(demo, "realtime_subscriptions", lambda n: n == 0, base)
    await expect(page.locator("#status")).to_have_attribute("data-paused", "true")
    assert conn.subscriptions == {}
    assert (await gauges(demo))["realtime_connections"] - base["realtime_connections"] == 1
    added = await demo.create_session("Created while hidden")
    await demo.api("PATCH", f"/api/sessions/{kept['id']}", {"state": "running"})
    await expect(page.locator("#sessions-body tr")).to_have_count(1)  # nothing reaches it

    await page.evaluate("window.__setVisibility('visible')")
    await expect(page.locator("#status")).to_have_attribute("data-paused", "false")
    await expect(page.locator("#status")).to_have_attribute("data-snapshots", "2")  # a fresh one
    await expect(row(page, added["id"])).to_be_visible()
    await expect(row(page, kept["id"])).to_have_attribute("data-state", "running")
    assert await until(demo, "realtime_subscriptions", lambda n: n == topics, base) == topics
    assert await connection(page) == first  # the same socket throughout
    assert demo.hub.connections == {conn}
    await demo.api("PATCH", f"/api/sessions/{added['id']}", {"state": "done"})
    await expect(row(page, added["id"])).to_have_attribute("data-state", "done")
