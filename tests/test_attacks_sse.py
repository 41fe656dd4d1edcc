"""Attacks on the SSE transport's endpoints, each written as the attack, with the
defence it must meet (docs/security.md, the SSE transport). Loopback, bounded."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from aiohttp_realtime.sse import MAX_FRAMES_PER_POST, sse_deliver
from tests.test_transports import SseClient
from tests.token_support import bearer, serving


@pytest.fixture
def served(aiohttp_client: Any) -> Any:
    return serving(aiohttp_client)


async def _refused(response: Any, status: int, error: str) -> None:
    assert response.status == status, await response.text()
    assert (await response.json())["error"] == error


async def test_a_wrong_secret_is_refused_and_never_logged(lib_client, caplog):
    caplog.set_level(logging.DEBUG)
    client, _hub, _state, _ = await lib_client()
    c = await SseClient.connect(client)
    secret = c.hello["sse_secret"]
    for wrong in ("", "x", secret[:-1], secret + "x", secret.upper()):
        await _refused(await c.post('{"type": "ping"}', **{"X-Realtime-Secret": wrong}), 403, "bad_secret")
    await c.send({"type": "subscribe", "topics": ["items"]})
    assert (await c.recv())["type"] == "snapshot"
    assert secret not in caplog.text


async def test_another_connections_id_with_my_secret_is_refused(lib_client):
    """Attack: post frames into someone else's stream (its id is in logs)."""
    client, _hub, _state, _ = await lib_client()
    victim = await SseClient.connect(client)
    attacker = await SseClient.connect(client)
    url = victim.post_url
    headers = {"X-Realtime-Secret": attacker.hello["sse_secret"], "Content-Type": "application/json"}
    response = await client.post(url, data=b'{"type": "subscribe", "topics": ["items"]}', headers=headers)
    await _refused(response, 403, "bad_secret")
    assert not sse_deliver(
        victim.hello["connection_id"], b'{"type":"ping"}', secret=attacker.hello["sse_secret"]
    )
    assert await victim.barrier() == []  # nothing reached the victim


async def test_an_unknown_or_closed_connection_is_404(lib_client):
    client, hub, _state, _ = await lib_client()
    headers = {"X-Realtime-Secret": "x", "Content-Type": "application/json"}
    response = await client.post("/api/realtime/sse/nope", data=b"{}", headers=headers)
    await _refused(response, 404, "unknown_connection")
    c = await SseClient.connect(client)
    [conn] = hub.connections
    conn.close(4000, "bye")
    await conn.wait_closed()
    await _refused(await c.post('{"type": "ping"}'), 404, "unknown_connection")


async def test_a_post_from_a_page_of_another_origin_is_refused(lib_client):
    """CSRF: a page on evil.example posting to the stream of a logged-in user."""
    client, _hub, _state, _ = await lib_client()
    c = await SseClient.connect(client)
    response = await c.post('{"type": "subscribe", "topics": ["items"]}', Origin="https://evil.example")
    await _refused(response, 403, "origin_not_allowed")
    refused = await client.get("/api/realtime/sse", headers={"Origin": "https://evil.example"})
    await _refused(refused, 403, "origin_not_allowed")
    assert await c.barrier() == []


async def test_oversize_bodies_and_too_many_frames_are_refused(lib_client):
    client, _hub, _state, _ = await lib_client(max_frame_bytes=1024)
    c = await SseClient.connect(client)
    big = json.dumps({"type": "ping", "id": "x" * 2000})
    await _refused(await c.post(big), 413, "frame_too_large")
    await _refused(await c.post(f"[{big}]"), 413, "frame_too_large")
    many = json.dumps([{"type": "ping"}] * (MAX_FRAMES_PER_POST + 1))
    await _refused(await c.post(many), 413, "too_many_frames")
    await _refused(await c.post("x" * 1_000_000), 413, "body_too_large")
    await _refused(await c.post("{not json"), 400, "invalid_json")
    await _refused(await c.post(b"\xff".decode("latin-1")), 400, "invalid_json")
    await _refused(
        await c.post('{"type": "ping"}', **{"Content-Type": "text/plain"}), 415, "unsupported_media_type"
    )
    # Still served, and a batch is handled in order.
    response = await c.post(json.dumps([{"type": "ping", "id": f"p{i}"} for i in range(3)]))
    assert (response.status, await response.json()) == (202, {"accepted": 3})
    assert [await c.recv() for _ in range(3)] == [{"type": "pong", "id": f"p{i}"} for i in range(3)]


async def test_a_flood_of_frames_in_one_post_meets_the_rate_limit(lib_client):
    client, hub, _state, _ = await lib_client(frames_per_s=0.1, frames_burst=4)
    c = await SseClient.connect(client)
    response = await c.post(json.dumps([{"type": "ping", "id": f"p{i}"} for i in range(MAX_FRAMES_PER_POST)]))
    assert response.status == 202
    assert (await response.json())["accepted"] < MAX_FRAMES_PER_POST
    code, _reason = await c.closed()
    assert code == 1008
    assert not hub.connections


async def test_auth_is_required_on_the_stream_and_no_subprotocol_token_counts(served, caplog):
    caplog.set_level(logging.DEBUG)
    s = await served()
    token = s.issuer.mint()
    await _refused(await s.client.get("/api/realtime/sse"), 401, "unauthorized")
    offer = {"Sec-WebSocket-Protocol": f"realtime.v1, auth.{token}"}
    await _refused(await s.client.get("/api/realtime/sse", headers=offer), 401, "unauthorized")
    c = await SseClient.connect(s.client, **bearer(token))
    assert c.hello["principal"] == "alice"
    assert token not in caplog.text and c.hello["sse_secret"] not in caplog.text
