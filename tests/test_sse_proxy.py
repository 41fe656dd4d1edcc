"""The SSE stream through nginx (issue 22, item 4): each event arrives at once.

nginx buffers a proxied response by default (`proxy_buffering on`): a stream's small
events would sit in its buffers. The stream's `X-Accel-Buffering: no` header turns that
off for this response alone, so no proxy configuration is needed:

- through nginx with its *default* proxy configuration (a bare `proxy_pass`, rendered
  here: HTTP/1.0 to the backend, buffering on), an event published after the stream
  opened arrives well within a second, as does a ping's pong;
- through `deploy/nginx.conf` itself (TLS, HTTP/1.1 upstream), the same promptness.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

from tests.proxy_support import (
    NGINX_MAIN,
    Certificate,
    _running,
    backend_node,
    nginx,
    proxy_certificate,  # noqa: F401 - a fixture
    require_program,
)
from tests.support import free_port

#: The most a single small event may take through the proxy (nginx's buffering would
#: hold it until 4-8 KB more came, or the stream ended: indefinitely here).
PROMPT_S = 1.0
TOPIC = "sessions.state"

#: nginx's defaults: a location with `proxy_pass` and nothing else.
DEFAULT_PROXY = """\
server {{
    listen 127.0.0.1:{port};
    location / {{
        proxy_pass http://127.0.0.1:{backend};{extra}
    }}
}}
"""


@contextlib.asynccontextmanager
async def default_nginx(backend: int, extra: str = "") -> AsyncIterator[int]:
    """nginx with a bare `proxy_pass` to `backend` (plus `extra` directives): its port.
    (Hand-written: deploy/nginx.conf sets HTTP/1.1 and headers; this is what a proxy
    configured by someone who never heard of this service does.)"""
    binary = require_program("nginx")
    with tempfile.TemporaryDirectory(prefix="nginx-") as tmp:
        directory = Path(tmp)
        port = free_port()
        config = DEFAULT_PROXY.format(port=port, backend=backend, extra=extra)
        (directory / "backend.conf").write_text(config)
        user = "user root;" if os.geteuid() == 0 else ""
        (directory / "nginx.conf").write_text(NGINX_MAIN.format(dir=directory, user=user))
        command = [binary, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-e", "stderr"]
        async with _running("nginx", command, directory, (port,), signal.SIGQUIT):
            yield port


class Stream:
    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float) -> dict[str, Any]:
        """The next frame (heartbeat comments skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                line = (await self.response.content.readline()).decode()
                assert line, "the stream ended"
                if line.startswith("data: "):
                    frame: dict[str, Any] = json.loads(line[6:])
                    return frame


async def post(http: aiohttp.ClientSession, url: str, secret: str, frame: dict[str, Any]) -> None:
    headers = {"X-Realtime-Secret": secret, "Content-Type": "application/json"}
    async with http.post(url, data=json.dumps(frame), headers=headers) as response:
        assert response.status == 202, await response.text()


async def event_delay(http: aiohttp.ClientSession, base: str, backend: str, *, timeout: float) -> float:
    """Open the stream at `base` (through the proxy), subscribe, then create a session
    straight on the backend (`backend`): the seconds from the write's answer to the
    event's arrival on the stream (a TimeoutError past `timeout`)."""
    async with http.get(f"{base}/api/realtime/sse") as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        stream = Stream(response)
        hello = await stream.next(timeout)  # the headers and the hello: a first write
        url = f"{base}/api/realtime/sse/{hello['connection_id']}"
        await post(http, url, hello["sse_secret"], {"type": "subscribe", "topics": [TOPIC]})
        snapshot = await stream.next(timeout)
        assert snapshot["type"] == "snapshot", snapshot
        started = time.monotonic()
        await post(http, url, hello["sse_secret"], {"type": "ping", "id": "x"})
        assert await stream.next(timeout) == {"type": "pong", "id": "x"}
        assert time.monotonic() - started < timeout
        async with http.post(f"{backend}/api/sessions", json={"title": "through nginx"}) as created:
            assert created.status == 201, await created.text()
        written = time.monotonic()
        event = await stream.next(timeout)
        assert event["type"] == "event" and event["topic"] == TOPIC, event
        return time.monotonic() - written


async def test_events_arrive_at_once_through_nginx_with_its_default_proxy_configuration() -> None:
    async with (
        backend_node() as node,
        default_nginx(node.port) as port,
        aiohttp.ClientSession() as http,
    ):
        delay = await event_delay(
            http, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{node.port}", timeout=5
        )
        assert delay < PROMPT_S, f"the event took {delay:.2f} s through nginx"


async def test_events_arrive_at_once_through_the_deployed_nginx_conf(
    proxy_certificate: Certificate,  # noqa: F811
) -> None:
    public = free_port()
    args = ("--forwarded-allow-ips", "127.0.0.1", "--allow-host", f"127.0.0.1:{public}")
    async with (
        backend_node(*args) as node,
        nginx([node.port], proxy_certificate, port=public) as proxy,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=proxy_certificate.client_context())) as http,
    ):
        base = proxy.url("").rstrip("/")
        delay = await event_delay(http, base, f"http://127.0.0.1:{node.port}", timeout=5)
        assert delay < PROMPT_S, f"the event took {delay:.2f} s through nginx"
