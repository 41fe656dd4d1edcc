"""SSE across several nodes without sticky sessions: a POST for a stream held by another
node is forwarded to it through the broker, and answered with what that node decided.

A stream's connection id starts with its node's id (`node_of`: the process's random id
prefix, handler.py), so any node knows where a POST must go. A node that does not hold
the stream publishes the POST - connection id, the `X-Realtime-Secret` it received, the
body - on the holding node's channel (``<prefix>sse:<node>``, `RedisBroker.listen_node`)
and waits for that node's acknowledgement on its own channel:

- the holder checks the secret and hands the frames to the stream (`sse.sse_deliver`,
  after the frames of earlier POSTs), then acknowledges 202, or 404 (no such stream
  there any more) or 403 (a wrong secret): the forwarding node answers that status.
  Only the holder knows the secret; the forwarder never compares it, never logs it.
- nobody listens on the channel (PUBLISH reached no node: the holder is gone): 404
  `unknown_connection`, as the holder itself would answer. The client reconnects.
- Redis unreachable, or no acknowledgement within the broker's timeout (the message,
  or its answer, lost with a subscription connection: pub/sub is at-most-once): 503
  `forward_failed`. Whether the frames were handled is unknown, so the client must not
  resend them on the same stream: it reconnects and resyncs from snapshots (the
  TypeScript and Python clients end the stream on a 404 or a 5xx; a 409 would only
  fail the frames, which is why no `wrong_node` code is used).

Why wait for the acknowledgement rather than answer 202 once published: a client sends
one POST at a time, each after the previous one's 202. With the 202 after the holder
queued the frames, a POST that goes straight to the holder next can never overtake one
still travelling through Redis, so the frames keep the client's order on any node.
It costs one round trip through Redis per forwarded POST (well under a millisecond on
a LAN); POSTs that reach the holder are handled there directly.

With the in-memory broker (one process) there is nowhere to forward: an unknown id
is 404, as before.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import Any, Protocol, runtime_checkable

from aiohttp import web

from . import handler
from .broker import BrokerUnavailable
from .handler import HUB_KEY, refuse, refused_origin
from .hub import Hub

log = logging.getLogger(__name__)

#: The length of a node's id at the start of each connection id (handler.py's prefix).
NODE_ID_LENGTH = len(handler._ID_PREFIX)
#: The header that carries a stream's secret (sse.py's).
SECRET_HEADER = "X-Realtime-Secret"


def node_id() -> str:
    """This process's id: the start of every connection id it gives out."""
    return handler._ID_PREFIX


def node_of(connection_id: str) -> str | None:
    """The node that holds `connection_id`, or None if the id cannot be one of ours."""
    if len(connection_id) <= NODE_ID_LENGTH:
        return None
    return connection_id[:NODE_ID_LENGTH]


@runtime_checkable
class NodeBroker(Protocol):
    """A broker through which nodes reach each other (`RedisBroker`)."""

    @property
    def timeout_s(self) -> float: ...

    def listen_node(self, node: str, receive: Any) -> None: ...

    async def send_to_node(self, node: str, message: bytes) -> int: ...


class Forwarder:
    """This node's side of forwarding: sends POSTs for streams held elsewhere, and
    handles those other nodes send for its own streams."""

    def __init__(self, broker: NodeBroker, timeout_s: float) -> None:
        self._broker = broker
        self._timeout_s = timeout_s
        self._node = node_id()
        self._ids = itertools.count(1)
        #: Forwarded POSTs waiting for their acknowledgement, by request id.
        self._waiting: dict[int, asyncio.Future[int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        broker.listen_node(self._node, self._received)

    def remote(self, connection_id: str) -> str | None:
        """The other node holding `connection_id`, or None (ours, or not an id)."""
        node = node_of(connection_id)
        return node if node is not None and node != self._node else None

    async def forward(self, node: str, connection_id: str, secret: str, body: bytes) -> int:
        """Send a POST to `node`; the HTTP status to answer (202, 403, 404, 503)."""
        request_id = next(self._ids)
        message = {
            "op": "post",
            "id": request_id,
            "from": self._node,
            "c": connection_id,
            "s": secret,
            "b": body.decode(),
        }
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = answer
        try:
            try:
                listeners = await self._broker.send_to_node(node, json.dumps(message).encode())
            except BrokerUnavailable as exc:
                log.info("forwarding a POST to node %s failed: %s", node, exc)
                return 503
            if not listeners:
                return 404  # no such node now: the stream ended with it
            try:
                async with asyncio.timeout(self._timeout_s):
                    return await answer
            except TimeoutError:
                log.info("node %s did not acknowledge a forwarded POST in time", node)
                return 503
        finally:
            self._waiting.pop(request_id, None)

    def _received(self, data: bytes) -> None:
        """A message on this node's channel: a POST for one of its streams, or the
        acknowledgement of one it forwarded."""
        try:
            message = json.loads(data)
            op = message["op"]
            if op == "ack":
                answer = self._waiting.get(message["id"])
                if answer is not None and not answer.done():
                    answer.set_result(int(message["status"]))
            elif op == "post":
                status = _deliver(message["c"], message["s"], message["b"])
                task = asyncio.get_running_loop().create_task(
                    self._acknowledge(message["from"], message["id"], status)
                )
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        except (ValueError, KeyError, TypeError):
            log.warning("an unreadable message on this node's channel was dropped")

    async def _acknowledge(self, node: str, request_id: int, status: int) -> None:
        message = json.dumps({"op": "ack", "id": request_id, "status": status}).encode()
        try:
            await self._broker.send_to_node(node, message)
        except BrokerUnavailable as exc:  # the forwarder times out: 503, the client resyncs
            log.info("acknowledging a forwarded POST to node %s failed: %s", node, exc)


def _deliver(connection_id: str, secret: str, body: str) -> int:
    """Hand a forwarded POST to a stream of this node: 202, 404 or 403."""
    from .sse import is_sse_connection, sse_deliver

    if not is_sse_connection(connection_id):
        return 404
    return 202 if sse_deliver(connection_id, body, secret=secret) else 403


#: The app's forwarder, when its broker lets nodes reach each other.
FORWARDER_KEY = web.AppKey("realtime_sse_forwarder", Forwarder)


def setup_forwarding(app: web.Application, hub: Hub) -> Forwarder | None:
    """Forward POSTs between nodes if the hub's broker can (call before the app starts:
    the node's channel is subscribed when the broker starts)."""
    broker = hub.broker
    if not isinstance(broker, NodeBroker):
        return None
    forwarder = Forwarder(broker, broker.timeout_s)
    app[FORWARDER_KEY] = forwarder
    return forwarder


async def forwarded(request: web.Request) -> web.StreamResponse | None:
    """The answer to a POST whose stream another node holds (forwarded there), or None
    when it is not for another node (or nothing forwards): sse.py handles it here."""
    forwarder = request.app.get(FORWARDER_KEY)
    if forwarder is None:
        return None
    connection_id = request.match_info["connection_id"]
    node = forwarder.remote(connection_id)
    if node is None:
        return None
    from .sse import BodyRefused, body_limit, client_frames

    settings = request.app[HUB_KEY].settings
    refused = refused_origin(request, settings)  # CSRF, as on the holding node
    if refused is not None:
        return refused
    if request.content_type != "application/json":
        return refuse(415, "unsupported_media_type", "send application/json")
    secret = request.headers.get(SECRET_HEADER, "")
    if not secret:
        return refuse(403, "bad_secret", f"{SECRET_HEADER} does not match this connection")
    limit = body_limit(settings)
    if request.content_length is not None and request.content_length > limit:
        return refuse(413, "body_too_large", f"a request body is at most {limit} bytes")
    body = await request.read()
    try:
        texts = client_frames(body, settings)  # refused here, as the holder would
    except BodyRefused as refusal:
        return refusal.response()
    status = await forwarder.forward(node, connection_id, secret, body)
    if status == 202:
        return web.json_response({"accepted": len(texts)}, status=202)
    if status == 403:
        return refuse(403, "bad_secret", f"{SECRET_HEADER} does not match this connection")
    if status == 404:
        return refuse(404, "unknown_connection", "no such stream here; reconnect")
    return refuse(503, "forward_failed", "the node holding this stream did not answer; reconnect")


async def sse_post(request: web.Request) -> web.StreamResponse:
    """`POST {path}/sse/{connection_id}` on every node: forwarded when another node holds
    the stream (`forwarded`), else sse.py's handler."""
    from .sse import sse_post_handler

    answer = await forwarded(request)
    return answer if answer is not None else await sse_post_handler(request)


__all__ = ["FORWARDER_KEY", "Forwarder", "forwarded", "node_of", "setup_forwarding", "sse_post"]
