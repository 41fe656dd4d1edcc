"""aiohttp wiring: the `GET /api/realtime` handler and its receive loop.

The receive loop must always run: it answers WebSocket pings, notices dead
peers through the heartbeat, and is where a client's messages are handled one
at a time, in order. Bad input becomes an `error` frame, never an exception
that ends the loop.
"""

from __future__ import annotations

import json
import logging
import secrets
from datetime import UTC, datetime
from typing import Any

import pydantic
from aiohttp import WSMsgType, web

from .connection import Connection
from .errors import ErrorCode
from .frames import error_frame, hello_frame, pong_frame
from .hub import Hub
from .protocol import PingFrame, SubscribeFrame, client_message_adapter

log = logging.getLogger(__name__)

HUB_KEY = web.AppKey("realtime_hub", Hub)


def origin_allowed(request: web.Request, allowed: frozenset[str] | None) -> bool:
    """Browsers always send Origin on a WebSocket handshake; aiohttp does not check
    it, and without a check any site could open a socket with the user's cookies."""
    origin = request.headers.get("Origin")
    if origin is None:
        return True  # not a browser
    if allowed is not None:
        return origin in allowed
    return origin == f"{request.scheme}://{request.host}"


async def realtime_handler(request: web.Request) -> web.StreamResponse:
    hub = request.app[HUB_KEY]
    settings = hub.settings
    if not origin_allowed(request, settings.allowed_origins):
        return web.json_response(
            {"error": "origin_not_allowed", "message": "this Origin may not connect"}, status=403
        )
    ws = web.WebSocketResponse(
        heartbeat=settings.heartbeat_s,
        # aiohttp refuses a frame whose size *equals* max_msg_size; ours is inclusive.
        max_msg_size=settings.max_frame_bytes + 1,
        compress=settings.compress,
    )
    if not ws.can_prepare(request).ok:
        return web.json_response(
            {"error": "websocket_required", "message": "connect with a WebSocket upgrade"},
            status=426,
            headers={"Upgrade": "websocket"},
        )
    await ws.prepare(request)
    transport = request.transport
    if transport is None:  # the peer left during the handshake
        return ws
    conn = Connection(
        ws,
        transport,
        secrets.token_urlsafe(12),
        max_queue_bytes=settings.max_queue_bytes,
        close_timeout_s=settings.close_timeout_s,
        flusher=hub.flusher,
        on_closed=hub.disconnect,
    )
    hub.connect(conn)
    try:
        conn.send(hello_frame(conn.id, datetime.now(UTC), settings))
        await _receive_loop(ws, conn, hub)
    finally:
        if not conn.closing:
            conn.close(ws.close_code or 1000, "")
        await conn.wait_closed()
    return ws


async def _receive_loop(ws: web.WebSocketResponse, conn: Connection, hub: Hub) -> None:
    async for msg in ws:
        if conn.closing:
            break
        if msg.type is WSMsgType.TEXT:
            await _handle_text(msg.data, conn, hub)
        elif msg.type is WSMsgType.BINARY:
            conn.send(
                error_frame(ErrorCode.INVALID_MESSAGE, "binary frames are not supported; send JSON text")
            )
        elif msg.type is WSMsgType.ERROR:
            log.info("connection %s: %s", conn.id, ws.exception())
            break


async def _handle_text(data: str, conn: Connection, hub: Hub) -> None:
    try:
        message = client_message_adapter.validate_json(data)
    except pydantic.ValidationError as exc:
        conn.send(_validation_error(data, exc))
        return
    if isinstance(message, PingFrame):
        conn.send(pong_frame(message.id))
    elif isinstance(message, SubscribeFrame):
        for topic in dict.fromkeys(message.topics):
            await hub.subscribe(conn, topic, message.id)
    else:
        for topic in message.topics:
            hub.unsubscribe(conn, topic)


def _validation_error(data: str, exc: pydantic.ValidationError) -> bytes:
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return error_frame(ErrorCode.INVALID_JSON, f"invalid JSON: {first['msg']}")
    request_id = _request_id(data)
    if first["type"] == "union_tag_invalid":
        return error_frame(ErrorCode.UNKNOWN_TYPE, first["msg"], id=request_id)
    where = ".".join(str(p) for p in first["loc"]) or "message"
    return error_frame(ErrorCode.INVALID_MESSAGE, f"{where}: {first['msg']}", id=request_id)


def _request_id(data: str) -> str | None:
    """Echo a client's `id` even when the rest of its message is invalid."""
    try:
        raw: Any = json.loads(data)
    except ValueError:
        return None
    rid = raw.get("id") if isinstance(raw, dict) else None
    return rid if isinstance(rid, str) and len(rid) <= 128 else None
