"""aiohttp wiring: the `GET /api/realtime` handler and its receive loop.

The receive loop must always run: it answers WebSocket pings, notices dead
peers through the heartbeat, and is where a client's messages are handled one
at a time, in order. Bad input becomes an `error` frame, never an exception
that ends the loop. What a parsed frame asks is decided by the core
(`core.inbound.plan`, `core.ClientLimits`); this module performs it.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import secrets
import time
from typing import Any

import pydantic
import pydantic_core
from aiohttp import WSMessage, WSMsgType, web

from . import metrics
from .auth import SUBPROTOCOL, allowed_host, allowed_origin, expired, offered_protocols, token_request
from .closecodes import CloseCode
from .connection import Connection, ws_writer
from .core.inbound import plan
from .errors import ErrorCode
from .frames import error_frame, hello_frame, response_error_frame, ws_text_frame
from .hub import Hub
from .jsonguard import depth_exceeds, safe_name
from .principal import Principal
from .protocol import AuthFrame, client_message_adapter
from .settings import RealtimeSettings
from .wsguard import GuardedWebSocketResponse, guard_protocol, handshake_tail, has_backlog

log = logging.getLogger(__name__)

HUB_KEY = web.AppKey("realtime_hub", Hub)

#: Connection ids: opaque, for logs. A random prefix per process (so ids from several
#: workers or restarts do not collide) and a counter: no system call per connection.
_ID_PREFIX = secrets.token_urlsafe(6)
_ids_issued = itertools.count(1)


def new_connection_id() -> str:
    return f"{_ID_PREFIX}{next(_ids_issued):x}"


def refuse(status: int, error: str, message: str, **headers: str) -> web.Response:
    """A refusal before the upgrade: JSON, like every error of the realtime layer."""
    return web.json_response({"error": error, "message": message}, status=status, headers=headers)


async def realtime_handler(request: web.Request) -> web.StreamResponse:
    # One coroutine frame lives as long as the connection (this one): the steps around
    # it are helpers that return, so an idle connection pays for a single frame.
    hub = request.app[HUB_KEY]
    settings = hub.settings
    # Every check that can refuse runs before the upgrade, so a refused client gets an
    # HTTP status and a JSON body, and never a frame.
    refused = _refused_request(request, settings)
    if refused is not None:
        return refused
    ws = GuardedWebSocketResponse(
        linger_s=settings.close_timeout_s,
        heartbeat=settings.heartbeat_s,
        # aiohttp refuses a frame whose size *equals* max_msg_size; ours is inclusive.
        max_msg_size=settings.max_frame_bytes + 1,
        compress=settings.compress,
        protocols=(SUBPROTOCOL,),  # never echo an `auth.<token>` offer
        timeout=settings.close_timeout_s,
    )
    if not ws.can_prepare(request).ok:
        return refuse(426, "websocket_required", "connect with a WebSocket upgrade", Upgrade="websocket")
    principal = None
    if hub.authenticate is not None:
        principal, refused = await authenticated(request, hub)
        if refused is not None:
            return refused
    address = request.remote or ""
    if not hub.take_slot(address):
        return refuse(
            503, "too_many_connections", "connection limit reached; retry later", **{"Retry-After": "5"}
        )
    conn: Connection | None = None
    try:
        conn = await _opened(request, ws, hub, principal, address)
        if conn is None:  # the peer left during the handshake
            return ws
        try:
            loop = asyncio.get_running_loop()
            # Between frames, events owed a write go out (`writer.Flusher.due`). The
            # flusher is the hub's; a bound method held here would be one more object
            # per connection for the garbage collector to visit, as long as it lives.
            flusher = hub.flusher
            flusher.due()
            async for msg in ws:
                if not await _received(msg, ws, conn, hub, loop, request):
                    break
                flusher.due()
                # Fairness: with frames already buffered, receive() returns without
                # suspending, so one client's backlog of subscribes (each building a
                # snapshot) would run back to back and hold the loop. One message per
                # loop turn per connection. (Without a backlog, receive() suspends by
                # itself: no extra loop turn per message.)
                if has_backlog(ws):
                    await asyncio.sleep(0)
        except Exception:
            extra = {"connection_id": conn.id, "close_code": CloseCode.INTERNAL_ERROR}
            log.exception("connection %s: unexpected error; closing with 1011", conn.id, extra=extra)
            conn.close(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            if not conn.closing:
                conn.closed_by_peer(ws.close_code or 1000)
            await conn.wait_closed()
            await ws.lingered()
        return ws
    finally:
        if conn is None:
            hub.release_slot(address)
        else:  # its calls run on after it (calls.py): the slot bounds them too
            hub.calls.release_after_calls(conn, functools.partial(hub.release_slot, address))


def refused_origin(request: web.Request, settings: RealtimeSettings) -> web.Response | None:
    """The Host and Origin checks (DNS rebinding, cross-site), as a refusal or None."""
    if not allowed_host(request, settings):
        return refuse(403, "host_not_allowed", "this Host is not served here")
    if not allowed_origin(request, settings):
        return refuse(403, "origin_not_allowed", "this Origin may not connect")
    return None


def _refused_request(request: web.Request, settings: RealtimeSettings) -> web.Response | None:
    refused = refused_origin(request, settings)
    if refused is not None:
        return refused
    offered = offered_protocols(request)
    if offered and SUBPROTOCOL not in offered:
        # Refused here, before aiohttp would log the offer list (an `auth.<token>` in it).
        msg = f"offer the subprotocol {SUBPROTOCOL} (with auth.<token> if you send a token)"
        return refuse(400, "subprotocol_required", msg)
    return None


async def authenticated(request: web.Request, hub: Hub) -> tuple[Principal | None, web.Response | None]:
    """The principal, or the refusal."""
    assert hub.authenticate is not None
    try:
        async with asyncio.timeout(hub.settings.hook_timeout_s):
            principal = await hub.authenticate(request)
    except Exception:
        log.exception("authenticate failed; refusing the connection")
        return None, refuse(500, "internal_error", "authentication failed")
    if principal is None or expired(principal):
        headers = {"WWW-Authenticate": "Bearer"}
        return None, refuse(401, "unauthorized", "a valid token is required", **headers)
    return principal, None


async def _opened(
    request: web.Request, ws: GuardedWebSocketResponse, hub: Hub, principal: Principal | None, address: str
) -> Connection | None:
    """Upgrade, guard, register and greet; None if the peer left during the handshake."""
    settings = hub.settings
    early = handshake_tail(request)  # frames sent with the handshake, before our check
    writer = await ws.prepare(request)
    transport = request.transport
    if transport is None:
        return None
    guard_protocol(request, ws, early=early)
    connection_id = new_connection_id()
    now_us = time.time_ns() // 1000
    who, left = None, None
    if principal is not None:
        who = principal.id
        if principal.expires_at is not None:
            left = principal.expires_at.timestamp() - now_us / 1e6
    hello = hello_frame(connection_id, now_us, hub.hello_limits, principal=who, auth_expires_in_s=left)
    conn = Connection(
        ws,
        transport,
        connection_id,
        writer=ws_writer(ws, transport),
        max_queue_bytes=settings.max_queue_bytes,
        close_timeout_s=settings.close_timeout_s,
        owner=hub,
        principal=principal,
        address=address,
        limits=settings,
    )
    # Counted before its `hello` leaves: a client that has the hello finds itself in
    # the connection count (metrics, limits), whichever worker it asks.
    hub.connect(conn)
    conn.expire_in(left)  # closed with 4001 then, unless an `auth` frame refreshes it
    try:
        # The 101 response's headers wait for the first write (GuardedWebSocketResponse
        # buffers them): handshake and `hello` leave in one send. (The hello's few
        # hundred bytes bypass the outbox: nothing is queued before it.)
        await writer.write(ws_text_frame(hello))
    except ConnectionError:
        hub.disconnect(conn)
        return None
    return conn


async def _received(
    msg: WSMessage,
    ws: web.WebSocketResponse,
    conn: Connection,
    hub: Hub,
    loop: asyncio.AbstractEventLoop,
    request: web.Request,
) -> bool:
    """Handle one client message; False to stop reading (the connection is closing)."""
    if conn.closing:
        return False
    if msg.type is WSMsgType.ERROR:
        log.info("connection %s: %s", conn.id, ws.exception(), extra={"connection_id": conn.id})
        return False
    text = msg.data if msg.type is WSMsgType.TEXT else None
    return await client_frame(text, conn, hub, loop, request, binary=msg.type is WSMsgType.BINARY)


async def client_frame(
    data: str | None,
    conn: Connection,
    hub: Hub,
    loop: asyncio.AbstractEventLoop,
    request: web.Request,
    *,
    binary: bool = False,
) -> bool:
    """One client frame, whatever carried it (a WebSocket message, an element of an SSE
    transport's POST): the rate limits and their strikes, then what it asks. `data` is
    its JSON text (None: not text). False: the connection is closing; stop reading."""
    if not conn.limits.take_frame(loop.time()):
        if conn.limits.refused():
            log.info("connection %s: closed, kept sending while rate limited", conn.id, extra=_ids(conn))
            conn.close(CloseCode.POLICY_VIOLATION, "rate limit exceeded", eviction="rate_limited")
            return False
        _rate_limited(conn, data, hub.settings.max_json_depth)
        return True
    if data is not None:
        if await _handle_text(data, conn, hub, request):
            conn.limits.accepted()
        elif conn.limits.struck_out:
            text = "connection %s: closed, kept subscribing while rate limited"
            log.info(text, conn.id, extra=_ids(conn))
            conn.close(CloseCode.POLICY_VIOLATION, "rate limit exceeded", eviction="rate_limited")
            return False
    elif binary:
        _send_error(conn, ErrorCode.INVALID_MESSAGE, "binary frames are not supported; send JSON text")
    return True


async def _handle_text(data: str, conn: Connection, hub: Hub, request: web.Request) -> bool:
    """Handle one text frame; False if any of it was refused by a rate limit (each
    refused topic is a strike: a client that keeps subscribing while limited is
    closed like one that keeps sending)."""
    depth = hub.settings.max_json_depth
    if depth_exceeds(data, depth):
        # Its id, if it can be read (jiter bounds its own recursion), so a caller waiting
        # for the answer to its request gets one.
        msg = f"invalid JSON: nested deeper than {depth} levels"
        _send_error(conn, ErrorCode.INVALID_JSON, msg, id=_request_id(data))
        return True
    try:
        message = client_message_adapter.validate_json(data)
    except pydantic.ValidationError as exc:
        _send_error(conn, *_validation_error(data, exc))
        return True
    # What the frame asks, decided by the core; done here.
    todo = plan(message, conn.limits, asyncio.get_running_loop().time())
    for code in todo.errors:
        metrics.client_error(code)
    for frame in todo.frames:
        conn.send(frame)
    if todo.call is not None:
        hub.calls.request(conn, todo.call)
    # In a reconnect storm thousands of subscribes wait here for one shared snapshot:
    # what a waiting frame keeps alive survives into CPython's oldest generation and
    # makes its full collections longer and more frequent. So only what the awaits
    # need is kept (not the parsed message nor the plan).
    subscribe, request_id, unsubscribe = todo.subscribe, todo.request_id, todo.unsubscribe
    auth, served = todo.auth, todo.served
    del message, todo
    for i in range(len(subscribe)):
        if i:
            # One snapshot per loop turn: a 100-topic frame never holds the loop.
            # (After the frame's last one, the receive loop's own yield does it.)
            await asyncio.sleep(0)
        await hub.subscribe(conn, subscribe[i], request_id)
    for topic in unsubscribe:
        hub.unsubscribe(conn, topic)
    if auth is not None:
        await _reauthenticated(auth, conn, hub, request)
    return served


async def _reauthenticated(frame: AuthFrame, conn: Connection, hub: Hub, request: web.Request) -> None:
    """An `auth` frame: its token authenticated by the app's hook, as the handshake's was
    (the upgrade request with the token as its one credential, `token_request`), then
    handed to the hub to re-authorize the subscriptions; or an error with its id, the
    connection keeping its credential. Awaited in the receive loop, like a subscribe:
    one `auth` at a time per connection. The token is never logged."""
    current = conn.principal
    if hub.authenticate is None or current is None:
        msg = "authentication is off: there is no credential to refresh"
        _send_error(conn, ErrorCode.INVALID_MESSAGE, msg, id=frame.id)
        return
    try:
        async with asyncio.timeout(hub.settings.hook_timeout_s):
            principal = await hub.authenticate(token_request(request, frame.token))
    except Exception:
        log.exception("connection %s: authenticate failed for an auth frame", conn.id, extra=_ids(conn))
        _send_error(conn, ErrorCode.INTERNAL_ERROR, "authentication failed; retry later", id=frame.id)
        return
    if principal is None or expired(principal):
        _send_error(conn, ErrorCode.UNAUTHORIZED, "the token is not valid or has expired", id=frame.id)
    elif principal.id != current.id:
        msg = "the token names another principal; this connection keeps its own"
        _send_error(conn, ErrorCode.PRINCIPAL_CHANGED, msg, id=frame.id)
    elif not conn.closing:
        await hub.reauthorize(conn, principal, frame.id)


def _rate_limited(conn: Connection, data: str | None, depth: int) -> None:
    """A frame dropped by the rate limit: a `request` gets its `response` (its caller
    waits for one), an `auth` an `error` frame with its id (its caller waits too),
    anything else an `error` frame."""
    message = "too many frames; slow down"
    # Parsed only when it may be a request or an auth (a substring scan first): a flood
    # of other frames stays unparsed.
    awaited = (
        data is not None and ('"request"' in data or '"auth"' in data) and not depth_exceeds(data, depth)
    )
    kind, request_id = _awaited_id(data) if awaited and data else (None, None)
    if kind == "request" and request_id is not None:
        metrics.answered(ErrorCode.RATE_LIMITED)
        conn.send(response_error_frame(request_id, ErrorCode.RATE_LIMITED, message))
    else:  # an `auth`'s caller waits for its id too
        _send_error(conn, ErrorCode.RATE_LIMITED, message, id=request_id)


def _send_error(
    conn: Connection, code: ErrorCode, message: str, id: str | None = None, topic: str | None = None
) -> None:
    metrics.client_error(code)
    conn.send(error_frame(code, message, id=id, topic=topic))


def _ids(conn: Connection) -> dict[str, str]:
    return {"connection_id": conn.id}


def _validation_error(data: str, exc: pydantic.ValidationError) -> tuple[ErrorCode, str, str | None]:
    """The error code, message and request id that answer an invalid message."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return ErrorCode.INVALID_JSON, f"invalid JSON: {first['msg']}", None
    request_id = _request_id(data)
    if first["type"] == "union_tag_invalid":
        # pydantic's message quotes the client's tag: error texts never echo input.
        return (
            ErrorCode.UNKNOWN_TYPE,
            "`type` must be one of: subscribe, unsubscribe, ping, request, auth",
            request_id,
        )
    where = ".".join(str(safe_name(p)) for p in first["loc"]) or "message"
    return ErrorCode.INVALID_MESSAGE, f"{where}: {first['msg']}", request_id


def _request_id(data: str) -> str | None:
    """Echo a client's `id` even when the rest of its message is invalid."""
    try:
        raw: Any = pydantic_core.from_json(data)  # no recursion: depth was checked, and jiter bounds it
    except ValueError:
        return None
    return _id_of(raw)


def _awaited_id(data: str) -> tuple[str | None, str | None]:
    """(`request` or `auth`, its id) if `data` is one of the frames whose caller waits
    for an answer with its id; else (None, None)."""
    try:
        raw: Any = pydantic_core.from_json(data)
    except ValueError:
        return None, None
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind not in ("request", "auth"):
        return None, None
    return kind, _id_of(raw)


def _id_of(raw: Any) -> str | None:
    rid = raw.get("id") if isinstance(raw, dict) else None
    return rid if isinstance(rid, str) and len(rid) <= 128 else None
