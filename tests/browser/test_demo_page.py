"""The demo page in headless Chromium: it shows the server's state and keeps showing
it through changes, network outages and a lost event.

Every wait is one of Playwright's auto-retrying expectations; nothing sleeps.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.async_api import Page, expect

from aiohttp_realtime import CloseCode, close_all
from aiohttp_realtime.frames import event_frame
from backend.models import Session
from backend.service import now
from backend.topics import SESSIONS
from tests.browser.conftest import FAST_CLIENT, ConsoleWatch, Demo
from tests.browser.proxy import CuttableProxy
from tests.browser.screenshots import save_if_changed

RECONNECTING = re.compile(r"^Reconnecting in \d+ s$")
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "screenshot.png"


def row(page: Page, session_id: str):
    return page.locator(f'#sessions-body tr[data-session-id="{session_id}"]')


def terminal_row(page: Page, terminal_id: str):
    return page.locator(f'#terminals-body tr[data-terminal-id="{terminal_id}"]')


async def open_page(page: Page, base_url: str) -> None:
    await page.goto(f"{base_url}/?{FAST_CLIENT}")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")


async def test_page_shows_the_snapshot(demo: Demo, page: Page) -> None:
    first = await demo.create_session("Fix flaky login test")
    second = await demo.create_session("Speed up CI")
    await demo.api("PATCH", f"/api/sessions/{second['id']}", {"state": "running"})
    await demo.post_message(first["id"], "Hello 👋")
    terminal = await demo.service.put_terminal("pytest -x", "running", session_id=second["id"])

    await open_page(page, demo.url)

    await expect(page.locator("#sessions-body tr")).to_have_count(2)
    await expect(row(page, first["id"]).locator(".title")).to_have_text("Fix flaky login test")
    await expect(row(page, second["id"])).to_have_attribute("data-state", "running")
    await expect(row(page, second["id"]).get_by_test_id("state-badge")).to_have_text("running")
    await expect(terminal_row(page, terminal.id)).to_contain_text("Speed up CI")
    await expect(terminal_row(page, terminal.id).get_by_test_id("terminal-badge")).to_have_text("running")
    # The first session is selected by default and its activity shown.
    await expect(row(page, first["id"])).to_have_class("selected")
    await expect(page.locator("#messages .text")).to_have_text(["Hello 👋"])


async def test_changes_through_the_api_appear_without_a_reload(demo: Demo, page: Page) -> None:
    await open_page(page, demo.url)
    await expect(page.locator("#sessions-empty")).to_be_visible()

    # Through the page's own form...
    await page.get_by_label("New session title").fill("Write release notes")
    await page.get_by_role("button", name="Create session").click()
    await expect(page.locator("#sessions-body tr")).to_have_count(1)
    session_id = await page.locator("#sessions-body tr").get_attribute("data-session-id")
    assert session_id is not None
    await page.get_by_label("Message").fill("Draft them, please")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#messages .text")).to_have_text(["Draft them, please"])

    # ...and by anyone else, streaming included.
    await demo.api("PATCH", f"/api/sessions/{session_id}", {"state": "waiting"})
    await expect(row(page, session_id)).to_have_attribute("data-state", "waiting")
    reply = await demo.service.add_message(session_id, "assistant", "", streaming=True)
    assert reply is not None
    for chunk in ("Here ", "are ", "the notes ✍️"):
        await demo.service.stream_text(session_id, reply.id, chunk)
    streaming = page.locator(f'#messages [data-message-id="{reply.id}"]')
    await expect(streaming.locator(".text")).to_have_text("Here are the notes ✍️")
    await expect(streaming).to_have_class("message role-assistant streaming")
    await demo.service.end_message(session_id, reply.id)
    await expect(streaming).to_have_class("message role-assistant")
    await demo.api("DELETE", f"/api/sessions/{session_id}", status=204)
    await expect(page.locator("#sessions-body tr")).to_have_count(0)


async def test_page_creates_over_the_socket_and_the_http_api_still_works(demo: Demo, page: Page) -> None:
    """The page's forms call methods over its WebSocket (`request` frames), not the
    HTTP API; a session created through the HTTP API shows up all the same."""
    http_writes: list[str] = []
    page.on("request", lambda r: r.method != "GET" and http_writes.append(f"{r.method} {r.url}"))
    async with page.expect_websocket() as socket_info:
        await open_page(page, demo.url)
    socket = await socket_info.value
    sent: list[dict] = []
    received: list[dict] = []
    socket.on("framesent", lambda payload: sent.append(json.loads(payload)))
    socket.on("framereceived", lambda payload: received.append(json.loads(payload)))

    def is_response(payload: str | bytes) -> bool:
        return json.loads(payload)["type"] == "response"

    async with socket.expect_event("framereceived", is_response) as response_info:
        await page.get_by_label("New session title").fill("Created over the socket")
        await page.get_by_role("button", name="Create session").click()
    response = json.loads(await response_info.value)
    [request] = [f for f in sent if f["type"] == "request"]
    assert (request["method"], request["params"]) == ("sessions.create", {"title": "Created over the socket"})
    assert response["id"] == request["id"]
    session_id = response["result"]["id"]
    # The server's order: the session's event first, then the response.
    upserts = [
        i
        for i, f in enumerate(received)
        if f["type"] == "event" and f["payload"].get("session", {}).get("id") == session_id
    ]
    assert upserts and upserts[0] < received.index(response), received
    created = row(page, session_id)
    await expect(created.locator(".title")).to_have_text("Created over the socket")
    await expect(created).to_have_class("selected")
    await expect(page.get_by_label("New session title")).to_have_value("")

    await page.get_by_label("Message").fill("Sent over the socket")
    await page.get_by_role("button", name="Send").click()
    await expect(page.locator("#messages .text")).to_have_text(["Sent over the socket"])
    await expect(page.get_by_label("Message")).to_have_value("")  # its response came
    calls = [(f["method"], f["params"]) for f in sent if f["type"] == "request"]
    assert calls[1:] == [
        ("messages.send", {"session_id": session_id, "role": "user", "text": "Sent over the socket"})
    ]
    await expect(page.locator("#notice")).to_have_text("")
    assert http_writes == [], "the page wrote through the HTTP API"
    assert session_id in {s["id"] for s in await demo.api("GET", "/api/sessions")}

    # The HTTP API still creates sessions, and the page shows them.
    other = await demo.create_session("Created over HTTP")
    await expect(row(page, other["id"]).locator(".title")).to_have_text("Created over HTTP")
    await expect(page.locator("#sessions-body tr")).to_have_count(2)


async def test_page_shows_a_refused_request(demo: Demo, page: Page) -> None:
    """A method's error reaches the page's notice, like an HTTP error did."""
    await open_page(page, demo.url)
    await page.get_by_label("New session title").fill("   ")  # passes `required`; blank once stripped
    await page.get_by_role("button", name="Create session").click()
    await expect(page.locator("#notice")).to_have_text(re.compile(r"^Could not save: invalid_params: "))
    await expect(page.locator("#sessions-body tr")).to_have_count(0)


async def test_page_recovers_from_a_network_cut(
    demo: Demo, proxy: CuttableProxy, page: Page, console: ConsoleWatch
) -> None:
    console.allow_ws_failures = True
    kept = await demo.create_session("Kept session")
    doomed = await demo.create_session("Doomed session")
    await open_page(page, proxy.url)
    await expect(page.locator("#sessions-body tr")).to_have_count(2)
    first_connection = {conn.id for conn in demo.hub.connections}
    await page.evaluate("window.loadedOnce = true")  # gone if the page reloads

    await proxy.cut()
    await expect(page.locator("#status")).to_have_attribute("data-state", "reconnecting")
    await expect(page.locator("#status")).to_have_text(RECONNECTING)

    # Changes while the page cannot hear about them.
    added = await demo.create_session("Created during the cut")
    await demo.api("PATCH", f"/api/sessions/{kept['id']}", {"state": "error"})
    await demo.api("DELETE", f"/api/sessions/{doomed['id']}", status=204)
    await demo.post_message(kept["id"], "sent in the dark")
    terminal = await demo.service.put_terminal("make test", "exited", exit_code=1)
    # The page still shows the old state: it has no way to know yet.
    await expect(row(page, kept["id"])).to_have_attribute("data-state", "idle")

    await proxy.restore()
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    await expect(page.locator("#sessions-body tr")).to_have_count(2)
    await expect(row(page, added["id"])).to_be_visible()
    await expect(row(page, doomed["id"])).to_have_count(0)
    await expect(row(page, kept["id"])).to_have_attribute("data-state", "error")
    await expect(page.locator("#messages .text")).to_have_text(["sent in the dark"])
    await expect(terminal_row(page, terminal.id)).to_contain_text("make test")
    assert {conn.id for conn in demo.hub.connections}.isdisjoint(first_connection)
    assert await page.evaluate("window.loadedOnce === true"), "the page was reloaded"

    # And it is live again, not just resynced once.
    await demo.api("PATCH", f"/api/sessions/{added['id']}", {"state": "done"})
    await expect(row(page, added["id"])).to_have_attribute("data-state", "done")


async def test_page_notices_a_silent_network_by_its_missing_pong(
    demo: Demo, proxy: CuttableProxy, page: Page, console: ConsoleWatch
) -> None:
    console.allow_ws_failures = True
    session = await demo.create_session("Quiet session")
    await open_page(page, proxy.url)
    await expect(row(page, session["id"])).to_be_visible()

    proxy.stall()  # no reset, no close: the socket just goes quiet
    await demo.api("PATCH", f"/api/sessions/{session['id']}", {"state": "running"})
    await expect(page.locator("#status")).not_to_have_attribute("data-state", "live")

    await proxy.restore()
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    await expect(row(page, session["id"])).to_have_attribute("data-state", "running")


async def test_page_reconnects_at_once_when_the_server_goes_away(demo: Demo, page: Page) -> None:
    """Close 1001 (server restart) means "reconnect now", not "back off": with a
    ten-minute backoff window the page is still back within the expectation's 10 s."""
    await page.goto(f"{demo.url}/?backoff_ms=600000&backoff_cap_ms=600000")
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    before = {conn.id for conn in demo.hub.connections}

    await close_all(demo.hub, CloseCode.GOING_AWAY, "restarting")
    session = await demo.create_session("After the restart")

    await expect(row(page, session["id"])).to_be_visible()
    await expect(page.locator("#status")).to_have_attribute("data-state", "live")
    assert {conn.id for conn in demo.hub.connections}.isdisjoint(before)


async def test_seq_gap_makes_the_page_resync_the_topic(demo: Demo, page: Page) -> None:
    visible = await demo.create_session("Visible session")
    await open_page(page, demo.url)
    await expect(row(page, visible["id"])).to_be_visible()
    await expect(page.locator("#resyncs")).to_have_text("0")

    # A session the page has not heard of (stored without publishing), then an event
    # that skips a seq and claims something else: only a fresh snapshot shows the truth.
    t = now()
    hidden = Session(id="s-hidden", title="Only in the snapshot", state="done", created_at=t, updated_at=t)
    async with demo.service.store.write([SESSIONS]) as tx:
        await tx.put_session(hidden)
    demo.hub.state_changed("sessions.state")  # a change without an event: snapshots anew
    ghost = hidden.model_copy(update={"id": "s-ghost", "title": "From the bogus event"})
    (conn,) = demo.hub.connections
    sub = conn.subscriptions["sessions.state"]
    payload = json.dumps({"op": "upsert", "session": ghost.model_dump(mode="json")}).encode()
    conn.send(event_frame("sessions.state", sub.last_seq + 2, payload))

    await expect(page.locator("#resyncs")).to_have_text("1")
    await expect(row(page, "s-hidden")).to_have_attribute("data-state", "done")
    await expect(row(page, "s-ghost")).to_have_count(0)
    await expect(page.locator("#sessions-body tr")).to_have_count(2)
    # The topic is live again after the resync.
    await demo.api("PATCH", f"/api/sessions/{visible['id']}", {"state": "waiting"})
    await expect(row(page, visible["id"])).to_have_attribute("data-state", "waiting")


async def test_screenshot_of_a_populated_page(demo: Demo, page: Page, monkeypatch) -> None:
    """Saves docs/screenshot.png, the picture in the README. Timestamps are frozen so
    the picture only changes when the page's look does."""
    ticks = itertools.count()
    start = datetime(2026, 1, 15, 9, 30, 0, tzinfo=UTC)
    monkeypatch.setattr("backend.service.now", lambda: start + timedelta(seconds=7 * next(ticks)))
    titles_states = [
        ("Investigate memory spike", "running"),
        ("Migrate to pydantic v2", "waiting"),
        ("Speed up CI", "done"),
        ("Fix flaky login test", "error"),
        ("Add dark mode", "idle"),
    ]
    sessions = []
    for title, state in titles_states:
        s = await demo.create_session(title)
        await demo.api("PATCH", f"/api/sessions/{s['id']}", {"state": state})
        sessions.append(s)
    main = sessions[0]["id"]
    await demo.post_message(main, "Memory grows by 50 MB an hour in the worker. Why?")
    reply = await demo.service.add_message(main, "assistant", "", streaming=True)
    assert reply is not None
    await demo.service.stream_text(
        main,
        reply.id,
        "The send queue of a stuck client grew without bound. Bounding it by bytes and evicting",
    )
    await demo.service.put_terminal("pytest -x tests/", "running", session_id=main)
    await demo.service.put_terminal("npm run build", "exited", session_id=sessions[2]["id"], exit_code=0)
    await demo.service.put_terminal("ruff check", "exited", session_id=sessions[3]["id"], exit_code=1)

    await open_page(page, demo.url)
    await expect(page.locator("#sessions-body tr")).to_have_count(5)
    await expect(page.locator("#terminals-body tr")).to_have_count(3)
    await expect(page.locator("#messages .streaming .text")).to_contain_text("evicting")
    await page.set_viewport_size({"width": 1280, "height": 580})
    await save_if_changed(page.context, await page.screenshot(full_page=True), SCREENSHOT)
