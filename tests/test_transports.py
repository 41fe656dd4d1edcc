"""The transport-independent protocol checks, run on both transports: the WebSocket
(`GET /api/realtime`) and SSE + POST (`GET /api/realtime/sse`,
`POST /api/realtime/sse/{id}`). One suite, parametrised: a check that holds on one
transport and not the other is a bug in the transport, not in the check."""

from __future__ import annotations

import asyncio
import itertools
import json
import signal
import socket
from typing import Any

import aiohttp
import pytest

from aiohttp_realtime.protocol import HelloFrame, server_message_adapter
from backend.app import Config, build_app
from tests.support import RECEIVED_FRAMES, SCHEMA_CONTRACT, StuckClient, WsClient, backend_process

TRANSPORTS = ["websocket", "sse"]
_ids = itertools.count()


class Closed(Exception):
    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


class SseClient:
    """WsClient's interface over the SSE transport: the stream for frames, a POST per
    frame sent."""

    def __init__(self, http: Any, base: str, response: aiohttp.ClientResponse) -> None:
        self.http = http  # a TestClient (paths) or a ClientSession (absolute URLs)
        self.base = base
        self.response = response
        self.hello: dict[str, Any] = {}
        self.pings = 0

    @classmethod
    async def connect(cls, http: Any, base: str = "", **kwargs: Any) -> SseClient:
        response = await http.get(f"{base}/api/realtime/sse", **kwargs)
        assert response.status == 200, await response.text()
        self = cls(http, base, response)
        self.hello = await self.recv()
        assert self.hello["type"] == "hello"
        return self

    @property
    def post_url(self) -> str:
        return f"{self.base}/api/realtime/sse/{self.hello['connection_id']}"

    async def post(self, body: str, **headers: str) -> aiohttp.ClientResponse:
        headers = {
            "X-Realtime-Secret": self.hello["sse_secret"],
            "Content-Type": "application/json",
            **headers,
        }
        return await self.http.post(self.post_url, data=body.encode(), headers=headers)

    async def send_raw(self, text: str) -> None:
        response = await self.post(text)
        assert response.status == 202, await response.text()

    async def send(self, frame: dict[str, Any]) -> None:
        await self.send_raw(json.dumps(frame))

    async def event(self, timeout: float = 10) -> tuple[str | None, str]:
        """The next event (its name and data); comments are counted as pings."""
        name, data = None, []
        while True:
            line = await asyncio.wait_for(self.response.content.readline(), timeout)
            if not line:
                raise Closed(None, "the stream ended")
            text = line.decode().rstrip("\r\n")
            if not text:
                if data:
                    return name, "\n".join(data)
                continue
            if text.startswith(":"):
                self.pings += 1
                continue
            field, _, value = text.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)

    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        name, data = await self.event(timeout)
        if name == "close":
            close = json.loads(data)
            raise Closed(close["code"], close["reason"])
        assert name is None, name
        frame: dict[str, Any] = json.loads(data)
        RECEIVED_FRAMES.append(frame)
        SCHEMA_CONTRACT.check(frame)
        return frame

    async def subscribe(self, *topics: str, id: str | None = None) -> None:
        await self.send({"type": "subscribe", "topics": list(topics), **({"id": id} if id else {})})

    async def barrier(self) -> list[dict[str, Any]]:
        ping_id = f"b{next(_ids)}"
        await self.send({"type": "ping", "id": ping_id})
        frames = []
        while (frame := await self.recv()) != {"type": "pong", "id": ping_id}:
            frames.append(frame)
        return frames

    async def closed(self, timeout: float = 10) -> tuple[int | None, str]:
        """Read until the close; (code, reason). The stream must end right after it."""
        try:
            while True:
                await self.recv(timeout)
        except Closed as closed:
            assert await asyncio.wait_for(self.response.content.read(), timeout) == b""
            return closed.code, closed.reason

    async def close(self) -> None:
        self.response.close()


class WsTransportClient(WsClient):
    async def recv(self, timeout: float = 10) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
            raise Closed(msg.data, msg.extra or "")
        frame: dict[str, Any] = json.loads(msg.data)
        RECEIVED_FRAMES.append(frame)
        SCHEMA_CONTRACT.check(frame)
        return frame

    async def send_raw(self, text: str) -> None:
        await self.ws.send_str(text)

    async def closed(self, timeout: float = 10) -> tuple[int | None, str]:
        while True:
            msg = await self.ws.receive(timeout=timeout)
            if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return msg.data, msg.extra or ""


Client = SseClient | WsTransportClient


@pytest.fixture(params=TRANSPORTS)
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def connect(transport: str, http: Any, base: str = "", **kwargs: Any) -> Client:
    if transport == "sse":
        return await SseClient.connect(http, base, **kwargs)
    if base:
        ws = await http.ws_connect(f"{base}/api/realtime", **kwargs)
        client = WsTransportClient(ws)
        client.hello = await client.recv()
        return client
    return await WsTransportClient.connect(http, **kwargs)


async def test_hello_says_the_transport(lib_client, transport):
    client, _hub, _state, _ = await lib_client()
    c = await connect(transport, client)
    hello = c.hello
    assert hello is not None
    model = server_message_adapter.validate_python(hello)
    assert isinstance(model, HelloFrame)
    if transport == "sse":
        assert hello["transport"] == "sse"
        assert len(hello["sse_secret"]) >= 43  # 32 random bytes, URL-safe base64
        assert c.response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        assert c.response.headers["Cache-Control"] == "no-cache, no-transform"
        assert c.response.headers["X-Accel-Buffering"] == "no"
        assert "Content-Encoding" not in c.response.headers
    else:
        assert "transport" not in hello and "sse_secret" not in hello
    await c.close()


async def test_subscribe_gets_a_snapshot_then_contiguous_events(lib_client, transport):
    client, hub, state, _ = await lib_client()
    c = await connect(transport, client)
    await c.subscribe("items")
    snapshot = await c.recv()
    assert snapshot["type"] == "snapshot" and snapshot["topic"] == "items"
    published = [await state.set(hub, f"k{i}", i) for i in range(30)]
    events = [await c.recv() for _ in published]
    assert [e["seq"] for e in events] == list(range(snapshot["seq"] + 1, snapshot["seq"] + 31))
    assert [e["payload"]["value"] for e in events] == list(range(30))
    await c.close()


@pytest.mark.parametrize(
    ("raw", "code", "request_id"),
    [
        ('{"type": "subscribe", "topics": ["nope"], "id": "u1"}', "unknown_topic", "u1"),
        ('{"type": "subscribe", "topics": [], "id": "r9"}', "invalid_message", "r9"),
        ('{"type": "dance", "id": "r7"}', "unknown_type", "r7"),
        ("{not json", "invalid_json", None),
    ],
)
async def test_bad_frames_get_their_error_code(lib_client, transport, raw, code, request_id):
    client, _hub, _state, _ = await lib_client()
    c = await connect(transport, client)
    if transport == "sse" and code == "invalid_json":
        # A body that is not JSON is refused by HTTP before it is a frame.
        assert isinstance(c, SseClient)
        response = await c.post(raw)
        assert response.status == 400 and (await response.json())["error"] == "invalid_json"
        return
    await c.send_raw(raw)
    [error] = await c.barrier()
    assert (error["type"], error["code"], error.get("id")) == ("error", code, request_id)
    await c.close()


async def test_rate_limited_then_closed_with_1008(lib_client, transport):
    client, _hub, _state, _ = await lib_client(frames_per_s=0.1, frames_burst=4)
    c = await connect(transport, client)
    codes = []
    try:
        for i in range(20):
            await c.send({"type": "ping", "id": f"p{i}"})
    except (AssertionError, ConnectionError):
        pass  # the SSE stream is gone: 404 on the POST
    try:
        while True:
            frame = await c.recv()
            if frame["type"] == "error":
                codes.append(frame["code"])
    except Closed as closed:
        assert closed.code == 1008
    assert "rate_limited" in codes


async def test_requests_get_their_response(aiohttp_client, transport):
    client = await aiohttp_client(build_app(Config(simulate=False)))
    c = await connect(transport, client)
    await c.send({"type": "request", "id": "c1", "method": "sessions.create", "params": {"title": "x"}})
    while (frame := await c.recv())["type"] != "response":
        pass
    assert frame["id"] == "c1" and frame["result"]["title"] == "x"
    await c.send({"type": "request", "id": "c2", "method": "no.such", "params": {}})
    while (frame := await c.recv())["type"] != "response":
        pass
    assert frame["id"] == "c2" and frame["error"]["code"] == "method_not_found"
    await c.close()


async def _stuck_sse(host: str, port: int, topics: list[str]) -> socket.socket:
    """An SSE client that reads the head and the hello, subscribes (a POST from another
    socket), then never reads again."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, port))
    await loop.sock_sendall(sock, f"GET /api/realtime/sse HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    seen = b""
    while b"\n\n" not in seen.partition(b"\r\n\r\n")[2]:
        chunk = await loop.sock_recv(sock, 1)
        assert chunk, "closed before the hello"
        seen += chunk
    data = seen.partition(b"\r\n\r\n")[2]
    hello = json.loads(data[data.index(b"data: ") + 6 : data.index(b"\n\n")])
    async with aiohttp.ClientSession() as http:
        url = f"http://{host}:{port}/api/realtime/sse/{hello['connection_id']}"
        headers = {"X-Realtime-Secret": hello["sse_secret"]}
        async with http.post(url, json={"type": "subscribe", "topics": topics}, headers=headers) as r:
            assert r.status == 202
    return sock


async def test_a_stalled_reader_is_evicted_within_the_byte_budget(lib_client, transport):
    client, hub, state, _ = await lib_client(max_queue_bytes=64 * 1024, close_timeout_s=0.2)
    fast = await connect(transport, client)
    await fast.subscribe("items")
    assert (await fast.recv())["type"] == "snapshot"
    known = set(hub.connections)
    if transport == "sse":
        stuck_sock = await _stuck_sse(client.host, client.port, ["items"])
    else:
        stuck = await StuckClient.connect(client.host, client.port, ["items"])
    [slow] = hub.connections - known
    while "items" not in slow.subscriptions or not slow.subscriptions["items"].live:
        await fast.barrier()
    assert slow.transport_name == transport
    seqs = []
    for i in range(5000):
        seq = await state.set(hub, "v" * 4000, i)
        frame = await fast.recv()
        assert frame["seq"] == seq
        seqs.append(seq)
        if slow.closing:
            break
    else:
        raise AssertionError("the stalled reader was never evicted")
    assert slow.close_code == 4008
    await asyncio.wait_for(slow.wait_closed(), 5)
    assert slow.buffered_bytes == 0
    assert slow not in hub.connections
    assert hub.subscriber_count("items") == 1
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    last = await state.set(hub, "x", -1)
    assert [f["seq"] for f in await fast.barrier()] == [last]
    if transport == "sse":
        stuck_sock.close()
    else:
        stuck.close()


async def test_an_evicted_reader_that_still_reads_sees_4008(lib_client, transport):
    client, hub, _state, _ = await lib_client(max_queue_bytes=16 * 1024)
    c = await connect(transport, client)
    await c.subscribe("items")
    assert (await c.recv())["type"] == "snapshot"
    [conn] = hub.connections
    conn.evict()
    code, _reason = await c.closed()
    assert code == 4008


async def test_sigterm_closes_with_1012_and_the_stream_ends(transport):
    async with backend_process() as (proc, port), aiohttp.ClientSession() as http:
        c = await connect(transport, http, f"http://127.0.0.1:{port}")
        await c.subscribe("sessions.state")
        assert (await c.recv())["type"] == "snapshot"
        proc.send_signal(signal.SIGTERM)
        code, reason = await c.closed()
        assert code == 1012
        assert "reconnect" in reason or reason  # the reconnect window hint
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_the_python_client_speaks_both_transports(aiohttp_client, transport):
    from aiohttp_realtime.client import ClosedError
    from aiohttp_realtime.client import connect as client_connect

    app_client = await aiohttp_client(build_app(Config(simulate=False)))
    url = str(app_client.make_url("/api/realtime"))
    async with client_connect(url, session=app_client.session, transport=transport) as rt:
        assert rt.hello.transport == (None if transport == "websocket" else "sse")
        await rt.subscribe("sessions.state")
        snapshot = await rt.recv(timeout=5)
        assert snapshot.type == "snapshot"
        response = await rt.request("sessions.create", {"title": "py"})
        assert response["title"] == "py"
        await rt.barrier(timeout=5)
    with pytest.raises(ClosedError):
        await rt.recv(timeout=5)
