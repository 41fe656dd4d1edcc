"""The hub: publishing, connections, and the snapshot-then-events flow of a subscribe.

Ordering guarantee (docs/protocol.md): after a subscribe, a client gets the
topic's snapshot first, then every event with a larger seq, in order, without a
gap or duplicate - or its connection is closed. It holds under races because the
subscription is registered (buffering events) *before* the snapshot's seq is
read and its provider runs; buffered events the snapshot already reflects
(seq <= snapshot seq) are dropped when it goes live. The state machine that keeps
it is `core.ClientState`; routing is `core.Router`; this module sequences the
awaits (broker, provider) around them.

Publishing costs one serialisation and an append to the router's queue. Once per
loop tick the queued events are fanned out - a run of one topic's consecutive
events is one step per subscriber, not one per event - and then written, once per
connection (`writer.Flusher`, whose `prepare` is the fan-out). What a method's
handler publishes is recorded for its call (`calls.PUBLISHED`), and `delivered` holds
the call's response until those events have been routed here (`calls.py`). Metrics
(`metrics.py`) cost O(1) per event and per tick on top, never per subscriber.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from typing import Any, TypeVar, overload

from . import metrics
from .auth import Authenticate, Authorize
from .broker import Broker, BrokerUnavailable, Fence, MemoryBroker
from .calls import PUBLISHED, Calls
from .closecodes import CloseCode
from .connection import Connection
from .core import Router
from .errors import ErrorCode
from .frames import Frame, error_frame, hello_limits, snapshot_frame
from .methods import MethodRegistry
from .settings import RealtimeSettings
from .topics import TopicDef, TopicRef, TopicRegistry, UnknownTopic
from .writer import Flusher

log = logging.getLogger(__name__)

E = TypeVar("E")


class Hub:
    def __init__(
        self,
        registry: TopicRegistry,
        *,
        broker: Broker | None = None,
        settings: RealtimeSettings | None = None,
        authenticate: Authenticate | None = None,
        authorize: Authorize | None = None,
        methods: MethodRegistry | None = None,
    ) -> None:
        self.registry = registry
        #: The methods `request` frames call (None: every request is `method_not_found`).
        self.methods = methods
        #: None: authentication is off (every connection's principal is None).
        self.authenticate = authenticate
        #: None: every principal may subscribe to every registered topic.
        self.authorize = authorize
        self.broker: Broker = broker if broker is not None else MemoryBroker()
        self.settings = settings or RealtimeSettings()
        self._hello: tuple[RealtimeSettings, bytes] | None = None
        self.connections: set[Connection] = set()
        #: Open (or opening) WebSockets per client address, for the per-address limit.
        self._per_address: dict[str, int] = {}
        self._slots = 0
        self.flusher = Flusher(prepare=self._fan_out)
        self._router = Router()
        #: Topics with a local subscriber: done once the broker delivers them here.
        self._watches: dict[str, asyncio.Future[None]] = {}
        #: Topic → its pattern, for the topics with a local subscriber (metrics' labels).
        self._patterns: dict[str, str] = {}
        #: When the oldest event not yet written this tick was routed (latency sample).
        self._routed_at: float | None = None
        #: When the first event of the tick was queued (`_route`).
        self._queued_at = 0.0
        self.calls = Calls(self, methods, self.settings)
        #: Topic → calls' responses waiting for a seq of it to be routed here: (seq, waiter).
        self._awaited: dict[str, list[tuple[int, asyncio.Future[None]]]] = {}

    async def start(self) -> None:
        await self.broker.start(self._route, self._lost)

    async def stop(self) -> None:
        await self.calls.stop()
        await self.broker.stop()

    # ------------------------------------------------------------ publishing

    @overload
    async def publish(
        self, topic: TopicRef[Any, E] | TopicDef[Any, E], payload: E, *, fence: Fence | None = None
    ) -> int: ...
    @overload
    async def publish(self, topic: str, payload: Any, *, fence: Fence | None = None) -> int: ...

    async def publish(
        self,
        topic: TopicRef[Any, Any] | TopicDef[Any, Any] | str,
        payload: Any,
        *,
        fence: Fence | None = None,
    ) -> int:
        """Publish an event; returns its seq.

        `topic` is a typed handle (`ACTIVITY.at(session_id=sid)`, or a `TopicDef`
        without parameters), so the payload's type is checked statically, or a
        concrete name resolved through the registry. The payload is validated
        against the topic's event type and serialised once; every subscriber is
        handed the same bytes. Never awaits a client.

        `fence`: see `Broker.publish` - a token growing with the commit order of the
        topic's changes; a publish overtaken by a newer fenced one is refused (returns 0).
        """
        if isinstance(topic, str):
            resolved = self.registry.resolve(topic)
            if resolved is None:
                raise LookupError(f"no registered topic matches {topic!r}")
            definition, name = resolved[0].topic, topic
        else:
            ref = topic.ref() if isinstance(topic, TopicDef) else topic
            definition, name = ref.topic, ref.name
            if definition not in self.registry:
                raise LookupError(f"topic {definition.pattern!r} is not registered with this hub")
        seq = await self.broker.publish(name, definition.encode_event(payload), fence)
        metrics.published(definition.pattern)
        call = PUBLISHED.get()
        if call is not None and seq:  # published by a method's handler: its response waits for it
            call.add(name, seq)
        return seq

    @property
    def hello_limits(self) -> bytes:
        """What every connection's `hello` says of the limits (`frames.hello_limits`):
        built once per settings object, not per connect."""
        if self._hello is None or self._hello[0] is not self.settings:
            auth = self.authenticate is not None
            self._hello = (self.settings, hello_limits(self.settings, auth=auth))
        return self._hello[1]

    def _route(self, topic: str, seq: int, payload: bytes) -> None:
        """The broker's delivery: queued, and fanned out at the end of this loop
        iteration with everything else published in it (`_fan_out`)."""
        if self._router.queue(topic, seq, payload):
            self._queued_at = time.perf_counter()
            self.flusher.wake()

    def _fan_out(self) -> None:
        """Once per tick, before the flusher writes: the queued events to their
        subscribers' outboxes, then the responses waiting for them woken, and the
        metrics - frames counted per run, not per subscriber; the latency sampled
        once per tick, from the tick's first queued event to a callback queued
        after the writes (FIFO)."""
        routed = self._router.fan_out()
        delivered = False
        for topic, seq, frames in routed:
            if self._awaited:
                self._reached(topic, seq)
            if frames and metrics.ENABLED:
                metrics.delivered(self._patterns.get(topic, "unknown"), frames)
                delivered = True
        if delivered and self._routed_at is None:
            self._routed_at = self._queued_at
            asyncio.get_running_loop().call_soon(self._written)

    def _reached(self, topic: str, seq: int, *, lost: bool = False) -> None:
        """Wake the responses waiting for `topic` to reach `seq` (all of them if lost)."""
        waiters = self._awaited.get(topic)
        if waiters is None:
            return
        pending = []
        for target, waiter in waiters:
            if lost or seq >= target:
                if not waiter.done():
                    waiter.set_result(None)
            else:
                pending.append((target, waiter))
        if pending:
            self._awaited[topic] = pending
        else:
            del self._awaited[topic]

    async def delivered(self, conn: Connection, published: dict[str, int], timeout: float) -> None:
        """Until the events of `published` (topic → seq) on topics `conn` is live on have
        been routed here, so queued for it before anything queued after this returns.
        With the in-process broker, at the tick's fan-out (`_fan_out` wakes it). Past
        `timeout` (for all of them together) it gives up and logs: an event that never
        arrives is the broker's `lost`, which closes the topic's subscribers anyway."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        for topic, seq in published.items():
            sub = conn.subscriptions.get(topic)
            if conn.closing or sub is None or not sub.live or sub.last_seq >= seq:
                continue
            waiter = loop.create_future()
            self._awaited.setdefault(topic, []).append((seq, waiter))
            try:
                async with asyncio.timeout_at(until):
                    await waiter
            except TimeoutError:
                extra = {"connection_id": conn.id, "topic": topic}
                msg = "connection %s: %s seq %d never arrived; responding anyway"
                log.warning(msg, conn.id, topic, seq, extra=extra)
            finally:
                waiters = self._awaited.get(topic)
                if waiters is not None:
                    waiters[:] = [(t, w) for t, w in waiters if w is not waiter]
                    if not waiters:
                        del self._awaited[topic]

    def _written(self) -> None:
        if self._routed_at is not None:
            metrics.written_after(time.perf_counter() - self._routed_at)
            self._routed_at = None

    # ------------------------------------------------------------ connections

    def take_slot(self, address: str) -> bool:
        """Count a connection being opened from `address`; False (nothing counted) if
        the process or the address is at its limit. `release_slot` undoes it."""
        settings = self.settings
        held = self._per_address.get(address, 0)
        if self._slots >= settings.max_connections or held >= settings.max_connections_per_address:
            return False
        self._slots += 1
        self._per_address[address] = held + 1
        return True

    def release_slot(self, address: str) -> None:
        self._slots -= 1
        held = self._per_address[address] - 1
        if held:
            self._per_address[address] = held
        else:
            del self._per_address[address]

    def connect(self, conn: Connection) -> None:
        self.connections.add(conn)
        metrics.connected()
        log.debug("connection %s: open", conn.id, extra={"connection_id": conn.id})

    def disconnect(self, conn: Connection) -> None:
        for topic in list(conn.subscriptions):
            self.unsubscribe(conn, topic)
        if conn in self.connections:
            self.connections.discard(conn)
            metrics.disconnected()

    def subscriber_count(self, topic: str) -> int:
        return self._router.count(topic)

    # ------------------------------------------------------------ subscribing

    async def subscribe(self, conn: Connection, topic: str, request_id: str | None) -> None:
        """Subscribe `conn` to `topic` and queue its snapshot, or an error frame."""
        if conn.closing:
            return None
        resolved = self.registry.resolve(topic)
        if resolved is None:
            return self._error(conn, ErrorCode.UNKNOWN_TOPIC, "no such topic", request_id, topic)
        if topic not in conn.subscriptions and len(conn.subscriptions) >= self.settings.max_topics:
            msg = f"at most {self.settings.max_topics} topics per connection"
            return self._error(conn, ErrorCode.TOO_MANY_TOPICS, msg, request_id, topic)
        bound, params = resolved
        if not await self._authorized(conn, bound.topic, params):
            msg = "this connection may not subscribe to this topic"
            return self._error(conn, ErrorCode.FORBIDDEN, msg, request_id, topic)
        if conn.state.closing:  # closed while `authorize` ran
            return None
        sub, new = conn.state.subscribe(topic)  # buffering from here on (a re-subscribe: again)
        pattern = self._patterns[topic] = bound.topic.pattern
        first = new and self._router.attach(sub)
        if new:
            metrics.subscribed(pattern)
        epoch = sub.epoch
        try:
            # Order matters: registered above, *then* the broker delivers the topic here,
            # *then* read the seq, *then* build state.
            await self._watch(topic, first)
            seq = await self.broker.last_seq(topic)
            started = time.perf_counter()
            payload = await bound.snapshot_json(
                params, timeout=self.settings.snapshot_timeout_s, principal=conn.principal
            )
            metrics.snapshot_built(pattern, time.perf_counter() - started)
        except UnknownTopic:
            self.unsubscribe(conn, topic)
            return self._error(conn, ErrorCode.UNKNOWN_TOPIC, "no such topic", request_id, topic)
        except BrokerUnavailable as exc:
            extra = {"connection_id": conn.id, "topic": topic}
            log.warning("connection %s: cannot subscribe to %s: %s", conn.id, topic, exc, extra=extra)
            self.unsubscribe(conn, topic)
            msg = "the server cannot reach its backplane; retry later"
            return self._error(conn, ErrorCode.UNAVAILABLE, msg, request_id, topic)
        except Exception:
            log.exception("snapshot of %s failed", topic, extra={"connection_id": conn.id, "topic": topic})
            self.unsubscribe(conn, topic)
            msg = "could not build the snapshot"
            return self._error(conn, ErrorCode.SNAPSHOT_FAILED, msg, request_id, topic)
        snapshot = Frame(snapshot_frame(topic, seq, payload))
        if snapshot.size > self.settings.max_snapshot_bytes:
            # Evicting instead would make the client reconnect, resubscribe and be
            # evicted again, forever; queuing it would let one subscribe pin any amount
            # of memory. Refuse this topic only.
            self.unsubscribe(conn, topic)
            msg = f"the snapshot ({snapshot.size} bytes) exceeds max_snapshot_bytes"
            return self._error(conn, ErrorCode.SNAPSHOT_TOO_LARGE, msg, request_id, topic)
        if snapshot.size > conn.state.outbox.room and not await conn.wait_room(
            snapshot.size, self.settings.snapshot_room_timeout_s
        ):
            # Not room for it even after its earlier frames had time to drain: the
            # client does not read. (A client that reads is never evicted here, however
            # often it re-subscribes: it only waits for its own backlog.)
            conn.evict("snapshot_no_room")
            return None
        conn.state.go_live(sub, epoch, seq, snapshot)
        return None

    async def _authorized(self, conn: Connection, topic: TopicDef[Any, Any], params: dict[str, str]) -> bool:
        if self.authorize is None:
            return True
        try:
            allowed = self.authorize(conn.principal, topic, params)
            if inspect.isawaitable(allowed):
                async with asyncio.timeout(self.settings.hook_timeout_s):
                    allowed = await allowed
        except Exception:
            extra = {"connection_id": conn.id, "topic": topic.pattern}
            msg = "connection %s: authorize failed for %s; refusing"
            log.exception(msg, conn.id, topic.pattern, extra=extra)
            return False
        return allowed is True

    def unsubscribe(self, conn: Connection, topic: str) -> None:
        sub = conn.state.unsubscribe(topic)
        if sub is None:
            return
        metrics.unsubscribed(self._patterns.get(topic, "unknown"))
        if self._router.detach(sub):
            self._watches.pop(topic, None)
            self._patterns.pop(topic, None)
            self._reached(topic, 0, lost=True)  # no local subscriber left to order against
            self.broker.unwatch(topic)

    def _lost(self, topic: str) -> None:
        """The broker may have lost `topic`'s events: its subscribers cannot be
        continued without a gap, so they are ended here (the next subscriber of the
        topic is a first one again, and watches anew) and their connections closed
        with 1013, to resync from fresh snapshots."""
        self._watches.pop(topic, None)
        pattern = self._patterns.pop(topic, "unknown")
        self._reached(topic, 0, lost=True)
        subs = self._router.pop(topic)
        msg = "%s: backplane lost; closing its %d subscribers"
        log.warning(msg, topic, len(subs), extra={"topic": topic})
        for sub in subs:
            client = sub.client
            if client.unsubscribe(topic) is not None:
                metrics.unsubscribed(pattern)
            client.close(CloseCode.TRY_AGAIN_LATER, "backplane lost; resync")

    async def _watch(self, topic: str, first: bool) -> None:
        """Until the broker delivers `topic` to this node. The topic's first local
        subscriber asks the broker; the others wait for that answer (a network broker
        confirms a channel subscription asynchronously)."""
        if first:
            done = self._watches[topic] = asyncio.get_running_loop().create_future()
            try:
                await self.broker.watch(topic)
            except BaseException as exc:
                if not done.done():
                    done.set_exception(exc)
                    done.exception()  # retrieved: the waiters each get it
                raise
            if not done.done():
                done.set_result(None)
            return
        pending = self._watches.get(topic)
        if pending is not None and not pending.done():
            await asyncio.shield(pending)
        elif pending is not None:
            pending.result()

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _error(conn: Connection, code: ErrorCode, message: str, request_id: str | None, topic: str) -> None:
        metrics.client_error(code)
        conn.send(error_frame(code, message, id=request_id, topic=topic))
