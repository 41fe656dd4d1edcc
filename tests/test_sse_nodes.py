"""The SSE transport on several nodes without sticky sessions (issue 22, item 2).

Two `python -m backend` nodes share a Redis prefix and a PostgreSQL database of this
test's own, behind nginx run from `deploy/nginx.conf` (round-robin, no affinity). An
SSE client opens its stream through nginx (it lands on one node) and POSTs its frames
through nginx too, one at a time as the clients do: round-robin sends them to both
nodes, and the node without the stream forwards each to the one with it through Redis
(backend/realtime/sse_forward.py). Every frame is answered on the stream, in the order
sent: the snapshot, the pongs, the response to a request, the events it caused.

With the in-memory broker (one process), an id no stream has is 404.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.pg_support import pg_admin_url, pg_url  # noqa: F401 - fixtures
from tests.proxy_support import (
    Certificate,
    Node,
    Proxy,
    backend_node,
    nginx,
    proxy_certificate,  # noqa: F401 - a fixture
    session_from,
)
from tests.redis_support import redis_base_url, redis_prefix  # noqa: F401 - fixtures
from tests.support import free_port

TOPIC = "sessions.state"
SECRET_HEADER = "X-Realtime-Secret"


class SseClient:
    """A stream read line by line: `next()` is the next frame (heartbeats skipped; a
    close event fails the test)."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    async def next(self, timeout: float = 10) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            event: str | None = None
            while True:
                line = (await self.response.content.readline()).decode()
                if not line:
                    raise AssertionError("the stream ended")
                line = line.rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data: dict[str, Any] = json.loads(line[6:])
                    assert event is None, f"an `event: {event}` on the stream: {data}"
                    return data

    async def until(self, predicate: Any, timeout: float = 10) -> list[dict[str, Any]]:
        """Frames up to and including the first that `predicate` accepts."""
        seen = []
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next(timeout)
                seen.append(frame)
                if predicate(frame):
                    return seen


@contextlib.asynccontextmanager
async def stream(http: aiohttp.ClientSession, url: str) -> AsyncIterator[tuple[SseClient, dict[str, Any]]]:
    async with http.get(url, headers={"Accept": "text/event-stream"}) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("text/event-stream")
        client = SseClient(response)
        hello = await client.next()
        assert hello["type"] == "hello" and hello["transport"] == "sse", hello
        yield client, hello


async def post(http: aiohttp.ClientSession, url: str, secret: str, frame: Any) -> tuple[int, dict[str, Any]]:
    headers = {SECRET_HEADER: secret, "Content-Type": "application/json"}
    async with http.post(url, data=json.dumps(frame), headers=headers) as response:
        body = await response.json(content_type=None)
        return response.status, body


@contextlib.asynccontextmanager
async def two_nodes(
    redis_url: str, prefix: str, database: str, certificate: Certificate
) -> AsyncIterator[tuple[Node, Node, Proxy]]:
    public = free_port()
    args = (
        *("--broker", redis_url, "--redis-prefix", prefix, "--database", database),
        *("--forwarded-allow-ips", "127.0.0.1", "--allow-host", f"127.0.0.1:{public}"),
    )
    async with (
        backend_node(*args) as a,
        backend_node(*args) as b,
        nginx([a.port, b.port], certificate, port=public) as proxy,
    ):
        yield a, b, proxy


def posts_served(node: Node, connection_id: str) -> int:
    pattern = re.compile(rf'aiohttp\.access: .*"POST /api/realtime/sse/{re.escape(connection_id)} ')
    return sum(1 for line in node.lines if pattern.search(line))


async def test_posts_alternating_between_two_nodes_all_reach_the_stream(
    redis_base_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
    pg_url: str,  # noqa: F811
    proxy_certificate: Certificate,  # noqa: F811
) -> None:
    async with (
        two_nodes(redis_base_url, redis_prefix, pg_url, proxy_certificate) as (a, b, proxy),
        session_from("127.0.0.2", proxy_certificate) as http,
        stream(http, proxy.url("/api/realtime/sse")) as (client, hello),
    ):
        connection_id, secret = hello["connection_id"], hello["sse_secret"]
        url = proxy.url(f"/api/realtime/sse/{connection_id}")
        assert await post(http, url, secret, {"type": "subscribe", "topics": [TOPIC], "id": "s"}) == (
            202,
            {"accepted": 1},
        )
        (snapshot,) = await client.until(lambda f: f["type"] == "snapshot")
        assert snapshot["topic"] == TOPIC
        seq = snapshot["seq"]
        # POSTs one at a time, each after the previous 202, as the clients send them:
        # round-robin gives them to both nodes; each answer comes on the stream, in order.
        for i in range(12):
            if i % 3 == 2:
                frame: dict[str, Any] = {
                    "type": "request",
                    "id": f"r{i}",
                    "method": "sessions.create",
                    "params": {"title": f"over SSE {i}"},
                }
            else:
                frame = {"type": "ping", "id": f"p{i}"}
            assert await post(http, url, secret, frame) == (202, {"accepted": 1})
            if frame["type"] == "ping":
                (pong,) = await client.until(lambda f: True)
                assert pong == {"type": "pong", "id": f"p{i}"}
            else:
                # The response comes after the event its call published (protocol.md).
                event, response = await client.until(lambda f: f["type"] == "response")
                assert event["type"] == "event" and event["seq"] == seq + 1, event
                seq += 1
                assert response["id"] == f"r{i}" and "error" not in response, response
                assert response["result"]["title"] == f"over SSE {i}"
        # An array of frames in one POST, handled in order.
        batch = [{"type": "ping", "id": "b1"}, {"type": "ping", "id": "b2"}]
        assert await post(http, url, secret, batch) == (202, {"accepted": 2})
        assert await client.until(lambda f: f.get("id") == "b2") == [
            {"type": "pong", "id": "b1"},
            {"type": "pong", "id": "b2"},
        ]
        # Both nodes served POSTs of this stream: one of them forwarded its share.
        served = {"A": posts_served(a, connection_id), "B": posts_served(b, connection_id)}
        assert min(served.values()) >= 4, served

        # Refusals: a wrong secret is 403 on either node (the holder checks it), a
        # stream nobody holds 404.
        for _ in range(2):
            status, body = await post(http, url, "not-the-secret", {"type": "ping"})
            assert (status, body["error"]) == (403, "bad_secret")
        gone = connection_id[:-1] + ("0" if connection_id[-1] != "0" else "1")
        for _ in range(2):
            status, body = await post(http, proxy.url(f"/api/realtime/sse/{gone}"), secret, {"type": "ping"})
            assert (status, body["error"]) == (404, "unknown_connection")
        # Nothing else reached the stream meanwhile.
        await post(http, url, secret, {"type": "ping", "id": "last"})
        assert await client.until(lambda f: True) == [{"type": "pong", "id": "last"}]


async def test_a_post_for_a_node_that_is_gone_is_404(
    redis_base_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
    pg_url: str,  # noqa: F811
    proxy_certificate: Certificate,  # noqa: F811
) -> None:
    async with (
        two_nodes(redis_base_url, redis_prefix, pg_url, proxy_certificate) as (a, _b, _proxy),
        aiohttp.ClientSession() as http,
    ):
        # An id of a node that does not exist (no node listens on its channel).
        url = f"http://127.0.0.1:{a.port}/api/realtime/sse/ZZZZZZZZ1"
        status, body = await post(http, url, "x" * 43, {"type": "ping"})
        assert (status, body["error"]) == (404, "unknown_connection")


async def test_one_process_answers_404_for_an_unknown_stream() -> None:
    async with backend_node() as node, aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{node.port}/api/realtime/sse/ZZZZZZZZ1"
        status, body = await post(http, url, "x" * 43, {"type": "ping"})
        assert (status, body["error"]) == (404, "unknown_connection")


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
