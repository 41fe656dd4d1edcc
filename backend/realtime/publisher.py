"""Publishing: an event numbered by the broker, routed to this node's subscribers once
per loop tick, and the calls' responses held until their events were routed.

Publishing costs one serialisation (or none: `publish_encoded` takes what a store
already encoded) and the broker's numbering. The broker's delivery is an append to
the router's queue; once per loop tick the queued events are fanned out - a run of one
topic's consecutive events is one step per subscriber, not one per event - and then
written, once per connection (`writer.Flusher`, whose `prepare` is the fan-out). What
a method's handler publishes is recorded for its call (`calls.PUBLISHED`), and
`delivered` holds the call's response until what the connection is owed of it has
been routed here (`core.responses`). Metrics (`metrics.py`) cost O(1) per event and
per tick on top, never per subscriber.

`Hub` is a `Publisher` with connections and subscribes on top (`hub.py`); nothing here
knows a connection's protocol beyond `core.responses.owed`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, TypeVar, overload

from . import metrics
from .broker import Broker, Fence
from .calls import PUBLISHED
from .core import Router
from .core.responses import Holds, owed
from .core.snapshots import SnapshotCache
from .frames import Frame
from .shared import Shared
from .topics import TopicDef, TopicRef, TopicRegistry
from .writer import Flusher

if TYPE_CHECKING:
    from .connection import Connection

log = logging.getLogger(__name__)

E = TypeVar("E")


class Publisher:
    def __init__(self, registry: TopicRegistry, broker: Broker, *, snapshot_cache_bytes: int) -> None:
        self.registry = registry
        self.broker = broker
        self.flusher = Flusher(prepare=self._fan_out)
        self._router = Router()
        #: Topic → its pattern, for the topics with a local subscriber (metrics' labels).
        self._patterns: dict[str, str] = {}
        #: When the oldest event not yet written this tick was routed (latency sample).
        self._routed_at: float | None = None
        #: When the first event of the tick was queued (`_route`).
        self._queued_at = 0.0
        #: Calls' responses waiting for a seq of a topic to be routed here.
        self._holds: Holds[asyncio.Future[None]] = Holds()
        #: Snapshots shared by the subscribers of one (topic, seq, view): builds in
        #: flight, then their frames (`Hub._snapshot`); a topic's go at its next event.
        self._snapshots: SnapshotCache[Shared[Frame]] = SnapshotCache(snapshot_cache_bytes)

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
        definition, name = self._resolve(topic)
        return await self._publish(definition, name, definition.encode_event(payload), fence)

    async def publish_encoded(
        self, topic: TopicRef[Any, Any] | TopicDef[Any, Any] | str, data: bytes, *, fence: Fence | None = None
    ) -> int:
        """Publish an event already validated and serialised by the topic's
        `encode_event` (a store that keeps the JSON it wrote to its outbox): not done
        twice. `data` must be exactly what `encode_event` returned for this topic."""
        definition, name = self._resolve(topic)
        return await self._publish(definition, name, data, fence)

    def _resolve(
        self, topic: TopicRef[Any, Any] | TopicDef[Any, Any] | str
    ) -> tuple[TopicDef[Any, Any], str]:
        if isinstance(topic, str):
            resolved = self.registry.resolve(topic)
            if resolved is None:
                raise LookupError(f"no registered topic matches {topic!r}")
            return resolved[0].topic, topic
        ref = topic.ref() if isinstance(topic, TopicDef) else topic
        if ref.topic not in self.registry:
            raise LookupError(f"topic {ref.topic.pattern!r} is not registered with this hub")
        return ref.topic, ref.name

    async def _publish(
        self, definition: TopicDef[Any, Any], name: str, data: bytes, fence: Fence | None
    ) -> int:
        seq = await self.broker.publish(name, data, fence)
        metrics.published(definition.pattern)
        call = PUBLISHED.get()
        if call is not None and seq:  # published by a method's handler: its response waits for it
            call.add(name, seq)
        return seq

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
            if self._snapshots:  # the topic moved on: its shared snapshots are of older seqs
                self._snapshots.event(topic)
            if self._holds:
                self._wake(self._holds.reached(topic, seq))
            if frames and metrics.ENABLED:
                metrics.delivered(self._patterns.get(topic, "unknown"), frames)
                delivered = True
        if delivered and self._routed_at is None:
            self._routed_at = self._queued_at
            asyncio.get_running_loop().call_soon(self._written)

    async def delivered(self, conn: Connection, published: dict[str, int], timeout: float) -> None:
        """Until what `conn` is owed of `published` (topic → seq; `core.responses.owed`)
        has been routed here, so queued for it before anything queued after this returns.
        With the in-process broker, at the tick's fan-out (`_fan_out` wakes it). Past
        `timeout` (for all of them together) it gives up and logs: an event that never
        arrives is the broker's `lost`, which closes the topic's subscribers anyway."""
        loop = asyncio.get_running_loop()
        until = loop.time() + timeout
        for topic, seq in owed(conn.state, published).items():
            waiter = loop.create_future()
            self._holds.add(topic, seq, waiter)
            try:
                async with asyncio.timeout_at(until):
                    await waiter
            except TimeoutError:
                extra = {"connection_id": conn.id, "topic": topic}
                msg = "connection %s: %s seq %d never arrived; responding anyway"
                log.warning(msg, conn.id, topic, seq, extra=extra)
            finally:
                self._holds.discard(topic, waiter)

    @staticmethod
    def _wake(waiters: list[asyncio.Future[None]]) -> None:
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _written(self) -> None:
        if self._routed_at is not None:
            metrics.written_after(time.perf_counter() - self._routed_at)
            self._routed_at = None

    def subscriber_count(self, topic: str) -> int:
        return self._router.count(topic)
