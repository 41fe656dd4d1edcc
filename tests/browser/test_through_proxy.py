"""The demo page as deployed: `python -m backend --forwarded-allow-ips 127.0.0.1` behind
Debian's nginx running `deploy/nginx.conf` (tests/proxy_support.py), TLS ending at
nginx. Chromium loads https://127.0.0.1:<nginx port>/, its client opens
wss://127.0.0.1:<nginx port>/api/realtime (the backend allows that origin because nginx
forwards the https scheme and the host), and the page shows changes as they happen.

Every wait is one of Playwright's auto-retrying expectations; nothing sleeps.
"""

from __future__ import annotations

from playwright.async_api import Browser, expect

from tests.browser.conftest import FAST_CLIENT, ConsoleWatch
from tests.proxy_support import (
    Certificate,
    backend_node,
    nginx,
    proxy_certificate,  # noqa: F401 - a fixture
    session_from,
)
from tests.support import free_port


async def test_the_page_through_nginx_with_tls_shows_live_data(
    browser: Browser,
    proxy_certificate: Certificate,  # noqa: F811
) -> None:
    public = free_port()
    async with (
        backend_node("--forwarded-allow-ips", "127.0.0.1", "--allow-host", f"127.0.0.1:{public}") as node,
        nginx([node.port], proxy_certificate, port=public) as proxy,
        session_from("127.0.0.2", proxy_certificate) as http,
    ):
        # The test certificate is self-signed: this browser is told to accept it.
        context = await browser.new_context(
            ignore_https_errors=True,
            viewport={"width": 1280, "height": 760},
            locale="en-GB",
            timezone_id="UTC",
        )
        console = ConsoleWatch()
        try:
            page = await context.new_page()
            page.on("console", console.on_console)
            page.on("pageerror", console.on_page_error)
            async with page.expect_websocket() as socket_info:
                await page.goto(f"{proxy.url('/')}?{FAST_CLIENT}")
            socket = await socket_info.value
            assert socket.url == proxy.ws_url()  # wss://, through nginx
            await expect(page.locator("#status")).to_have_attribute("data-state", "live")
            await expect(page.locator("#sessions-empty")).to_be_visible()

            # Changes made by someone else, through the proxy, reach the page over wss.
            api = proxy.url("/api/sessions")
            async with http.post(api, json={"title": "Deployed behind nginx"}) as resp:
                assert resp.status == 201, await resp.text()
                session_id = (await resp.json())["id"]
            row = page.locator(f'#sessions-body tr[data-session-id="{session_id}"]')
            await expect(row.locator(".title")).to_have_text("Deployed behind nginx")
            async with http.patch(f"{api}/{session_id}", json={"state": "running"}) as resp:
                assert resp.status == 200, await resp.text()
            await expect(row).to_have_attribute("data-state", "running")

            # And the page's own writes go over the same socket, through nginx.
            await page.get_by_label("New session title").fill("Written from the page")
            await page.get_by_role("button", name="Create session").click()
            await expect(page.locator("#sessions-body tr")).to_have_count(2)
            assert not socket.is_closed()
        finally:
            await context.close()
        assert console.unexpected() == [], "the page logged errors"
