"""The React dashboard (GET /react/, examples/react-dashboard/) in headless Chromium: it
shows the server's sessions live, writes over its socket, and after a network cut
(Playwright's offline mode) resyncs to the server's current state.

Every wait is one of Playwright's auto-retrying expectations; nothing sleeps.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Page, expect

from tests.browser.conftest import FAST_CLIENT, ConsoleWatch, Demo
from tests.browser.screenshots import save_if_changed
from tests.support import until

SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "react-dashboard.png"


def row(page: Page, session_id: str):
    return page.locator(f'#sessions-body tr[data-session-id="{session_id}"]')


async def open_dashboard(page: Page, base_url: str) -> None:
    await page.goto(f"{base_url}/react/?{FAST_CLIENT}")
    await expect(page.locator(".status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#sessions-panel")).to_have_attribute("data-freshness", "live")


async def test_the_dashboard_shows_live_sessions_and_writes_over_its_socket(demo: Demo, page: Page) -> None:
    first = await demo.create_session("Fix flaky login test")
    second = await demo.create_session("Speed up CI")
    await demo.post_message(first["id"], "Hello 👋")
    await open_dashboard(page, demo.url)

    # The snapshot, the first session selected and its activity shown.
    await expect(page.locator("#sessions-body tr")).to_have_count(2)
    await expect(row(page, first["id"]).locator(".title")).to_have_text("Fix flaky login test")
    await expect(row(page, first["id"])).to_have_class("selected")
    await expect(page.locator("#messages .text")).to_have_text(["Hello 👋"])
    # One subscription per topic on the server, whatever the components did.
    (conn,) = demo.hub.connections
    assert sorted(conn.subscriptions) == ["sessions.activity:" + first["id"], "sessions.state"]

    # Live: a change through the HTTP API, a streamed reply.
    await demo.api("PATCH", f"/api/sessions/{second['id']}", {"state": "running"})
    await expect(row(page, second["id"])).to_have_attribute("data-state", "running")
    await expect(row(page, second["id"]).locator(".badge")).to_have_text("running")
    reply = await demo.service.add_message(first["id"], "assistant", "", streaming=True)
    assert reply is not None
    for chunk in ("Looking ", "into it ", "now"):
        await demo.service.stream_text(first["id"], reply.id, chunk)
    streaming = page.locator(f'#messages [data-message-id="{reply.id}"]')
    await expect(streaming.locator(".text")).to_have_text("Looking into it now")
    await expect(streaming).to_have_class("message role-assistant streaming")
    await demo.service.end_message(first["id"], reply.id)
    await expect(streaming).to_have_class("message role-assistant")

    # The page's own writes: requests over the socket, not the HTTP API.
    http_writes: list[str] = []
    page.on("request", lambda r: r.method != "GET" and http_writes.append(f"{r.method} {r.url}"))
    await page.get_by_label("New session title").fill("Created from React")
    await page.get_by_role("button", name="Create session").click()
    await expect(page.locator("#sessions-body tr")).to_have_count(3)
    created = page.locator("#sessions-body tr.selected")
    await expect(created.locator(".title")).to_have_text("Created from React")
    await expect(page.get_by_label("New session title")).to_have_value("")
    await page.get_by_label("Message").fill("Sent from React")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#messages .text")).to_have_text(["Sent from React"])
    assert http_writes == []
    created_id = await created.get_attribute("data-session-id")
    assert sorted(conn.subscriptions) == ["sessions.activity:" + str(created_id), "sessions.state"]
    # Selecting another session moves the activity subscription, and only it.
    await row(page, first["id"]).click()
    await expect(page.locator("#messages .text")).to_have_text(["Hello 👋", "Looking into it now"])
    await until(lambda: sorted(conn.subscriptions) == ["sessions.activity:" + first["id"], "sessions.state"])

    # A removed session leaves the list.
    await demo.api("DELETE", f"/api/sessions/{second['id']}", status=204)
    await expect(row(page, second["id"])).to_have_count(0)


async def test_the_dashboard_resyncs_after_a_network_cut(
    demo: Demo, page: Page, console: ConsoleWatch
) -> None:
    console.allow_ws_failures = True
    kept = await demo.create_session("Kept session")
    doomed = await demo.create_session("Doomed session")
    await open_dashboard(page, demo.url)
    await expect(page.locator("#sessions-body tr")).to_have_count(2)
    first_connection = {conn.id for conn in demo.hub.connections}
    await page.evaluate("window.loadedOnce = true")  # gone if the page reloads

    await page.context.set_offline(True)
    await expect(page.locator(".status")).not_to_have_attribute("data-state", "live")
    await expect(page.locator("#sessions-panel")).to_have_attribute("data-freshness", "stale")

    # Changes the page cannot hear about; it keeps showing what it had.
    added = await demo.create_session("Created during the cut")
    await demo.api("PATCH", f"/api/sessions/{kept['id']}", {"state": "error"})
    await demo.api("DELETE", f"/api/sessions/{doomed['id']}", status=204)
    await demo.post_message(kept["id"], "sent in the dark")
    await expect(row(page, kept["id"])).to_have_attribute("data-state", "idle")
    await expect(row(page, doomed["id"])).to_be_visible()

    await page.context.set_offline(False)
    await expect(page.locator(".status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#sessions-panel")).to_have_attribute("data-freshness", "live")
    await expect(page.locator("#sessions-body tr")).to_have_count(2)
    await expect(row(page, added["id"])).to_be_visible()
    await expect(row(page, doomed["id"])).to_have_count(0)
    await expect(row(page, kept["id"])).to_have_attribute("data-state", "error")
    await expect(page.locator("#messages .text")).to_have_text(["sent in the dark"])
    assert {conn.id for conn in demo.hub.connections}.isdisjoint(first_connection)
    assert len(demo.hub.connections) == 1, "one socket after the cut"
    assert await page.evaluate("window.loadedOnce === true"), "the page was reloaded"

    # And it is live again, not just resynced once.
    await demo.api("PATCH", f"/api/sessions/{added['id']}", {"state": "done"})
    await expect(row(page, added["id"])).to_have_attribute("data-state", "done")


async def test_screenshot_of_the_react_dashboard(demo: Demo, page: Page, monkeypatch) -> None:
    """Saves docs/react-dashboard.png, the picture in the README's React section.
    Timestamps are frozen so the picture only changes when the page's look does."""
    ticks = itertools.count()
    start = datetime(2026, 1, 15, 9, 30, 0, tzinfo=UTC)
    monkeypatch.setattr("backend.service.now", lambda: start + timedelta(seconds=7 * next(ticks)))
    sessions = []
    for title, state in [
        ("Investigate memory spike", "running"),
        ("Migrate to pydantic v2", "waiting"),
        ("Speed up CI", "done"),
        ("Fix flaky login test", "error"),
    ]:
        s = await demo.create_session(title)
        await demo.api("PATCH", f"/api/sessions/{s['id']}", {"state": state})
        sessions.append(s)
    main = sessions[0]["id"]
    await demo.post_message(main, "Memory grows by 50 MB an hour in the worker. Why?")
    reply = await demo.service.add_message(main, "assistant", "", streaming=True)
    assert reply is not None
    text = "A stuck client's send queue grew without bound. Bounding it"
    await demo.service.stream_text(main, reply.id, text)

    await open_dashboard(page, demo.url)
    await expect(page.locator("#sessions-body tr")).to_have_count(4)
    await expect(page.locator("#messages .streaming .text")).to_contain_text("Bounding it")
    await page.set_viewport_size({"width": 1280, "height": 350})
    await save_if_changed(page.context, await page.screenshot(full_page=True), SCREENSHOT)
