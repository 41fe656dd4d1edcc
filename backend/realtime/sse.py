"""The SSE transport: the same protocol over Server-Sent Events and POSTs, for networks
that break WebSocket upgrades (docs/protocol.md, Transports: WebSocket and SSE).

- `GET {path}/sse` (`sse_handler`): the same refusals as the WebSocket's upgrade (Host,
  Origin, authentication by bearer header or cookie, slots per address), then a
  `text/event-stream` whose every event is one server frame (`data: <json>`), the
  first a `hello` with `transport: "sse"` and the connection's `sse_secret`. The
  stream is a `Connection` like any other: an `SseSocket` and an `SseWriter` (writer.py)
  plug it into the same core, so ordering, the byte budget, eviction, rate limits and
  metrics are the WebSocket's code paths. Heartbeats are SSE comments; a close (4008,
  1012, 4001, ...) is an `event: close` carrying the code and reason, then the end.
- `POST {path}/sse/{connection_id}` (`sse_post_handler`): one client frame or a JSON
  array of at most `MAX_FRAMES_PER_POST`, authorised by the `X-Realtime-Secret` header
  (compared in constant time, never logged) and the Origin rule (CSRF). The frames go
  through the WebSocket's receive path (`handler.client_frame`) one at a time, in
  order, under the connection's lock; their answers come on the stream. 202 once
  handled.

Multi-node: streams are registered here, per process (`_streams`). A POST that reaches
a node without the stream gets 404 `unknown_connection` unless the application
forwards it: `sse_deliver` is the hook the holding node calls (from a broker
subscription) with the body and the secret the first node received.
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import json
import logging
import secrets
import time

import pydantic_core
from aiohttp import hdrs, web

from .connection import Connection
from .frames import SSE_PING, hello_frame, sse_event
from .handler import HUB_KEY, authenticated, client_frame, new_connection_id, refuse, refused_origin
from .hub import Hub
from .principal import Principal
from .settings import RealtimeSettings
from .writer import SseWriter

log = logging.getLogger(__name__)

#: The header that carries a connection's `sse_secret` on its POSTs.
SECRET_HEADER = "X-Realtime-Secret"
#: Most client frames one POST may carry.
MAX_FRAMES_PER_POST = 64
#: What a peer that vanished is closed with (no close came from it): abnormal closure.
PEER_GONE = 1006

STREAM_HEADERS = {
    hdrs.CONTENT_TYPE: "text/event-stream; charset=utf-8",
    # no-transform: proxies must not compress or otherwise hold the stream.
    hdrs.CACHE_CONTROL: "no-cache, no-transform",
    "X-Accel-Buffering": "no",  # nginx: do not buffer this response
}


class SseSocket:
    """The `connection.Socket` of an SSE stream: its close writes `event: close` with
    the code and reason, after which nothing is written, and ends the stream."""

    __slots__ = ("closed", "ended", "writer")

    def __init__(self) -> None:
        self.closed = False
        #: Done when the stream must end (closed by the server, or the peer left).
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.writer: SseWriter | None = None

    async def close(self, *, code: int, message: bytes) -> bool:
        if self.closed:
            return False
        if self.writer is not None:
            body = json.dumps({"code": code, "reason": message.decode(errors="replace")}).encode()
            self.writer.write_event(sse_event(body, b"close"))
        self.closed = True
        self.end()
        return True

    def end(self) -> None:
        if not self.ended.done():
            self.ended.set_result(None)


class SseStream:
    """One open stream, as the POSTs find it: its connection, secret and GET request
    (an `auth` frame's token is checked against it, as the upgrade request's is)."""

    __slots__ = ("conn", "hub", "lock", "request", "secret", "socket")

    def __init__(
        self, conn: Connection, socket: SseSocket, hub: Hub, secret: str, request: web.Request
    ) -> None:
        self.conn = conn
        self.socket = socket
        self.hub = hub
        self.secret = secret
        self.request = request
        #: Made at the first POST: frames are handled one at a time, in order.
        self.lock: asyncio.Lock | None = None

    def secret_matches(self, offered: str) -> bool:
        return hmac.compare_digest(offered.encode(), self.secret.encode())


#: The open streams of this process, by connection id.
_streams: dict[str, SseStream] = {}
#: Deliveries running for `sse_deliver` (strong references).
_deliveries: set[asyncio.Task[int]] = set()


# ---------------------------------------------------------------- the stream


async def sse_handler(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    settings = hub.settings
    refused = refused_origin(request, settings)
    if refused is not None:
        return refused
    principal = None
    if hub.authenticate is not None:
        principal, refused = await authenticated(_without_subprotocol(request), hub)
        if refused is not None:
            return refused
    address = request.remote or ""
    if not hub.take_slot(address):
        return refuse(
            503, "too_many_connections", "connection limit reached; retry later", **{"Retry-After": "5"}
        )
    stream: SseStream | None = None
    try:
        response = web.StreamResponse(headers=STREAM_HEADERS)
        response.force_close()  # the connection ends with the stream
        stream = await _opened(request, response, hub, principal, address)
        if stream is not None:
            await _held(stream, settings.heartbeat_s)
        return response
    finally:
        if stream is None:
            hub.release_slot(address)
        else:
            await _ended(stream)
            hub.calls.release_after_calls(stream.conn, functools.partial(hub.release_slot, address))


def _without_subprotocol(request: web.Request) -> web.Request:
    """The token comes from the bearer header or the cookie here: a subprotocol offer
    is a WebSocket thing, and is not read on this transport."""
    if hdrs.SEC_WEBSOCKET_PROTOCOL not in request.headers:
        return request
    headers = request.headers.copy()
    del headers[hdrs.SEC_WEBSOCKET_PROTOCOL]
    return request.clone(headers=headers)


async def _opened(
    request: web.Request, response: web.StreamResponse, hub: Hub, principal: Principal | None, address: str
) -> SseStream | None:
    """Start the stream, register and greet; None if the peer left meanwhile."""
    settings = hub.settings
    payload_writer = await response.prepare(request)
    transport = request.transport
    if transport is None:
        return None
    socket = SseSocket()
    writer = SseWriter(socket, transport, chunked=bool(getattr(payload_writer, "chunked", False)))
    socket.writer = writer
    connection_id = new_connection_id()
    now_us = time.time_ns() // 1000
    who, left = None, None
    if principal is not None:
        who = principal.id
        if principal.expires_at is not None:
            left = principal.expires_at.timestamp() - now_us / 1e6
    secret = secrets.token_urlsafe(32)
    hello = hello_frame(
        connection_id, now_us, hub.hello_limits, principal=who, auth_expires_in_s=left, sse_secret=secret
    )
    conn = _connection(socket, transport, writer, connection_id, hub, settings, principal, address)
    hub.connect(conn)
    conn.expire_in(left)
    stream = SseStream(conn, socket, hub, secret, request)
    _streams[connection_id] = stream
    try:
        # Through aiohttp: the headers leave with it, in one send; the later frames
        # go straight to the transport (SseWriter).
        await response.write(sse_event(hello))
    except ConnectionError:
        socket.end()
    return stream


def _connection(
    socket: SseSocket,
    transport: asyncio.Transport,
    writer: SseWriter,
    connection_id: str,
    hub: Hub,
    settings: RealtimeSettings,
    principal: Principal | None,
    address: str,
) -> Connection:
    return Connection(
        socket,
        transport,
        connection_id,
        writer=writer,
        max_queue_bytes=settings.max_queue_bytes,
        close_timeout_s=settings.close_timeout_s,
        owner=hub,
        principal=principal,
        address=address,
        limits=settings,
        transport_name="sse",
    )


async def _held(stream: SseStream, heartbeat_s: float) -> None:
    """Until the stream ends: a `: ping` comment every `heartbeat_s` (a client that
    hears nothing for twice that treats the stream as dead), and the peer's leaving
    noticed at the same pace (aiohttp does not tell a handler that its peer left; a
    write to it is dropped meanwhile)."""
    socket = stream.socket
    transport = stream.request.transport
    while not socket.ended.done():
        await asyncio.wait((socket.ended,), timeout=heartbeat_s)
        if socket.ended.done():
            return
        if transport is None or transport.is_closing():
            return
        if socket.writer is not None and not stream.conn.closing:
            socket.writer.write_event(SSE_PING)


async def _ended(stream: SseStream) -> None:
    conn = stream.conn
    _streams.pop(conn.id, None)
    if not conn.closing:
        conn.closed_by_peer(PEER_GONE)
    await conn.wait_closed()


# ---------------------------------------------------------------- client frames


class BodyRefused(Exception):
    """A POST body that is not one frame or an array of them, as its HTTP answer."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error = error
        self.message = message

    def response(self) -> web.Response:
        return refuse(self.status, self.error, self.message)


def body_limit(settings: RealtimeSettings) -> int:
    """The largest POST body: `MAX_FRAMES_PER_POST` frames of `max_frame_bytes`."""
    return MAX_FRAMES_PER_POST * (settings.max_frame_bytes + 1) + 1


def client_frames(body: bytes, settings: RealtimeSettings) -> list[str]:
    """The JSON texts of the client frames a POST body carries: the body if it is one
    frame, each element if it is an array. Raises `BodyRefused` (413, 400)."""
    try:
        text = body.decode()
        raw = pydantic_core.from_json(text)
    except ValueError:  # UnicodeDecodeError too
        raise BodyRefused(400, "invalid_json", "the body is not JSON") from None
    if not isinstance(raw, list):
        if len(body) > settings.max_frame_bytes:
            raise BodyRefused(413, "frame_too_large", f"a frame is at most {settings.max_frame_bytes} bytes")
        return [text]  # parsed again by the receive path, as a WebSocket text frame is
    if len(raw) > MAX_FRAMES_PER_POST:
        raise BodyRefused(413, "too_many_frames", f"at most {MAX_FRAMES_PER_POST} frames per request")
    texts = [json.dumps(item, separators=(",", ":"), ensure_ascii=False) for item in raw]
    if any(len(t.encode()) > settings.max_frame_bytes for t in texts):
        raise BodyRefused(413, "frame_too_large", f"a frame is at most {settings.max_frame_bytes} bytes")
    return texts


async def sse_post_handler(request: web.Request) -> web.Response:
    hub = request.app[HUB_KEY]
    settings = hub.settings
    refused = refused_origin(request, settings)  # CSRF: a page of another origin may not post
    if refused is not None:
        return refused
    stream = _streams.get(request.match_info["connection_id"])
    if stream is None or stream.hub is not hub or stream.conn.closing:
        return refuse(404, "unknown_connection", "no such stream here; reconnect")
    if not stream.secret_matches(request.headers.get(SECRET_HEADER, "")):
        return refuse(403, "bad_secret", f"{SECRET_HEADER} does not match this connection")
    if request.content_type != "application/json":
        return refuse(415, "unsupported_media_type", "send application/json")
    try:
        texts = client_frames(await _body(request, body_limit(settings)), settings)
    except BodyRefused as refusal:
        return refusal.response()
    return web.json_response({"accepted": await _deliver(stream, texts)}, status=202)


async def _body(request: web.Request, limit: int) -> bytes:
    if request.content_length is not None and request.content_length > limit:
        raise BodyRefused(413, "body_too_large", f"a request body is at most {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.readany():
        size += len(chunk)
        if size > limit:
            raise BodyRefused(413, "body_too_large", f"a request body is at most {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _deliver(stream: SseStream, texts: list[str]) -> int:
    """Handle `texts` as the stream's next client frames, after those of earlier POSTs;
    how many were handled (fewer if the connection closed meanwhile)."""
    if stream.lock is None:
        stream.lock = asyncio.Lock()
    conn, hub = stream.conn, stream.hub
    loop = asyncio.get_running_loop()
    handled = 0
    async with stream.lock:
        for i, text in enumerate(texts):
            if conn.closing:
                break
            if i:
                await asyncio.sleep(0)  # one frame per loop turn, as the WebSocket reads them
            handled += 1
            if not await client_frame(text, conn, hub, loop, stream.request):
                break
            hub.flusher.due()  # between frames: events owed a write go out (writer.Flusher)
    return handled


def sse_deliver(connection_id: str, frames_json: str | bytes, *, secret: str) -> bool:
    """The forwarding hook: handle a POST's body (`frames_json`: one client frame or a
    JSON array of them) for `connection_id`, if this process holds its stream and
    `secret` is its `sse_secret` (the `X-Realtime-Secret` the receiving node got; it
    is checked here, where the secret is known). True: accepted, the frames are
    handled in order after those already received, their answers on the stream. False:
    no such stream here (or closed), a wrong secret, or a body `client_frames` refuses.
    Call it on the event loop of the hub that holds the stream (a broker subscription's
    callback); it never blocks."""
    stream = _streams.get(connection_id)
    if stream is None or stream.conn.closing or not stream.secret_matches(secret):
        return False
    body = frames_json.encode() if isinstance(frames_json, str) else frames_json
    try:
        texts = client_frames(body, stream.hub.settings)
    except BodyRefused:
        return False
    task = asyncio.get_running_loop().create_task(_deliver(stream, texts))
    _deliveries.add(task)
    task.add_done_callback(_deliveries.discard)
    return True


def is_sse_connection(connection_id: str) -> bool:
    """Whether this process holds an open SSE stream with this id."""
    stream = _streams.get(connection_id)
    return stream is not None and not stream.conn.closing


__all__ = [
    "MAX_FRAMES_PER_POST",
    "SECRET_HEADER",
    "SseSocket",
    "is_sse_connection",
    "sse_deliver",
    "sse_handler",
    "sse_post_handler",
]
