"""Bad input on /api/realtime: an error frame with the right code, and the
connection stays open (a pong after it proves it)."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.support import StuckClient, WsClient

BAD_FRAMES = [
    ("{not json", "invalid_json", None),
    ('{"type": "subscribe", "topics": ["items"]', "invalid_json", None),
    ('["subscribe"]', "invalid_message", None),
    ('{"topics": ["items"]}', "invalid_message", None),
    ('{"type": "dance", "id": "r7"}', "unknown_type", "r7"),
    ('{"type": "subscribe", "topics": "items", "id": "r8"}', "invalid_message", "r8"),
    ('{"type": "subscribe", "topics": [], "id": "r9"}', "invalid_message", "r9"),
    ('{"type": "subscribe", "topics": [42]}', "invalid_message", None),
    ('{"type": "ping", "id": 5}', "invalid_message", None),
    ('{"type": "ping", "extra": true}', "invalid_message", None),
    ('{"type": "unsubscribe"}', "invalid_message", None),
    ('"ping"', "invalid_message", None),
    ("null", "invalid_message", None),
]


@pytest.mark.parametrize(("raw", "code", "request_id"), BAD_FRAMES)
async def test_bad_frame_gets_error_and_connection_stays_open(lib_client, raw, code, request_id):
    client, _hub, _state, _ = await lib_client()
    ws = await WsClient.connect(client)
    await ws.ws.send_str(raw)
    [error] = await ws.barrier()
    assert error["type"] == "error"
    assert error["code"] == code
    assert error.get("id") == request_id
    assert error["message"]
    # Still fully working afterwards.
    await ws.subscribe("items")
    assert [f["type"] for f in await ws.barrier()] == ["snapshot"]


async def test_binary_frame_is_invalid_message(lib_client):
    client, *_ = await lib_client()
    ws = await WsClient.connect(client)
    await ws.ws.send_bytes(b'{"type":"ping"}')
    [error] = await ws.barrier()
    assert error["code"] == "invalid_message"


async def test_ping_echoes_id(lib_client):
    client, *_ = await lib_client()
    ws = await WsClient.connect(client)
    await ws.send({"type": "ping", "id": "abc"})
    assert await ws.recv() == {"type": "pong", "id": "abc"}
    await ws.send({"type": "ping"})
    assert await ws.recv() == {"type": "pong"}


async def test_frame_over_the_limit_closes_with_1009(lib_client):
    client, *_ = await lib_client(max_frame_bytes=1024)
    ws = await WsClient.connect(client)
    assert ws.hello["max_frame_bytes"] == 1024
    await ws.send({"type": "ping", "id": "x" * 2000})
    msg = await ws.ws.receive(timeout=5)
    assert msg.type is aiohttp.WSMsgType.CLOSE
    assert msg.data == 1009


def _ping_of_size(size: int) -> str:
    frame = '{"type":"ping","id":"x"}'
    return frame + " " * (size - len(frame))  # trailing whitespace is valid JSON


async def test_frame_at_the_limit_is_accepted_one_byte_more_is_not(lib_client):
    client, *_ = await lib_client(max_frame_bytes=1024)
    ws = await WsClient.connect(client)
    await ws.ws.send_str(_ping_of_size(1024))
    assert await ws.recv() == {"type": "pong", "id": "x"}
    await ws.ws.send_str(_ping_of_size(1025))
    msg = await ws.ws.receive(timeout=5)
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 1009)


async def test_plain_get_is_a_json_426(lib_client):
    client, *_ = await lib_client()
    resp = await client.get("/api/realtime")
    assert resp.status == 426
    assert (await resp.json())["error"] == "websocket_required"


async def test_cross_site_origin_is_refused_with_json_403(lib_client):
    client, *_ = await lib_client()
    with pytest.raises(aiohttp.WSServerHandshakeError) as info:
        await client.ws_connect("/api/realtime", headers={"Origin": "https://evil.example"})
    assert info.value.status == 403


async def test_same_origin_browser_is_accepted(lib_client):
    client, *_ = await lib_client()
    origin = f"http://{client.host}:{client.port}"
    ws = await WsClient.connect(client, headers={"Origin": origin})
    assert ws.hello["type"] == "hello"


async def test_allowed_origins_setting(lib_client):
    client, *_ = await lib_client(allowed_origins=frozenset({"https://app.example"}))
    ws = await WsClient.connect(client, headers={"Origin": "https://app.example"})
    assert ws.hello["type"] == "hello"
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await client.ws_connect("/api/realtime", headers={"Origin": f"http://{client.host}:{client.port}"})


async def test_compression_is_off_by_default_and_a_setting(lib_client, aiohttp_client):
    client, *_ = await lib_client()
    ws = await client.ws_connect("/api/realtime", compress=15)
    assert ws.compress == 0
    client2, *_ = await lib_client(compress=True)
    ws2 = await client2.ws_connect("/api/realtime", compress=15)
    assert ws2.compress == 15
    # The hello leaves uncompressed with the handshake (a frame without RSV1 is valid
    # under permessage-deflate); later frames go through aiohttp's compressing writer.
    assert (await ws2.receive_json())["type"] == "hello"
    await ws2.send_json({"type": "subscribe", "topics": ["items"]})
    assert (await ws2.receive_json())["type"] == "snapshot"


async def test_server_heartbeat_is_configured(lib_client):
    client, _hub, *_ = await lib_client(heartbeat_s=7)
    ws = await WsClient.connect(client)
    assert ws.hello["heartbeat_s"] == 7


async def test_heartbeat_drops_a_peer_that_stops_answering_pings(lib_client):
    client, hub, *_ = await lib_client(heartbeat_s=1)
    alive = await WsClient.connect(client)  # aiohttp's client answers pings itself
    known = set(hub.connections)
    stuck = await StuckClient.connect(client.host, client.port, ["items"])
    [dead] = hub.connections - known
    # aiohttp answers pings inside receive(), so the live client keeps one pending.
    pending = asyncio.create_task(alive.ws.receive())
    await asyncio.wait_for(dead.wait_closed(), 10)  # no pong within heartbeat/2: dropped
    assert dead not in hub.connections
    await alive.send({"type": "ping", "id": "still-here"})
    msg = await asyncio.wait_for(pending, 10)
    assert msg.json() == {"type": "pong", "id": "still-here"}
    stuck.close()


async def test_the_hello_follows_the_hubs_settings_when_they_are_replaced(lib_client):
    # The limits part of the hello is built once per settings object (hub.hello_limits),
    # not per connect; replacing the settings must not leave a stale one.
    import dataclasses

    client, hub, *_ = await lib_client(max_topics=3)
    first = await WsClient.connect(client)
    assert first.hello["max_topics"] == 3
    hub.settings = dataclasses.replace(hub.settings, max_topics=5)
    second = await WsClient.connect(client)
    assert second.hello["max_topics"] == 5
    assert second.hello["connection_id"] != first.hello["connection_id"]
