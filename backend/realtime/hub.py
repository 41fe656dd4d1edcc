"""The hub: a `Publisher` (publisher.py) with connections and subscribes on top.

A subscribe's steps and their order are `core.Subscribe`'s (the snapshot-then-events
promise rests on that order: registered, watched, seq read, snapshot built, live);
`subscribe` here performs the steps that await - the `authorize` hook, the broker's
`watch` and `last_seq`, the provider, the wait for room - and feeds their outcomes
back. The topic's first local subscriber asks the broker to watch it; the others wait
for that answer (`_watch`). The last one's leaving unwatches it (`unsubscribe`), and a
topic the broker lost closes its subscribers (`_lost`). Requests run in `calls.Calls`,
which knows the hub only as `calls.Deliveries`; connection slots are `slots.Slots`.
A connection's new credential (an `auth` frame the handler authenticated) is applied in
`reauthorize`: every subscription authorized again, none of them interrupted.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from datetime import UTC, datetime
from typing import Any

from . import metrics
from .admission import Admission
from .auth import Authenticate, Authorize
from .broker import Broker, BrokerUnavailable, MemoryBroker
from .calls import Calls
from .closecodes import CloseCode
from .connection import Connection
from .core.snapshots import Key as SnapshotKey
from .core.snapshots import key as snapshot_key
from .core.subscribe import Step, Subscribe
from .errors import ErrorCode
from .frames import Frame, authed_frame, error_frame, hello_limits, snapshot_frame
from .methods import MethodRegistry
from .principal import Principal
from .publisher import Publisher
from .settings import RealtimeSettings
from .shared import Shared
from .slots import Slots
from .topics import BoundTopic, TopicDef, TopicRegistry, UnknownTopic

log = logging.getLogger(__name__)


class Hub(Publisher):
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
        settings = settings or RealtimeSettings()
        super().__init__(
            registry,
            broker if broker is not None else MemoryBroker(),
            snapshot_cache_bytes=settings.snapshot_cache_bytes,
        )
        #: The methods `request` frames call (None: every request is `method_not_found`).
        self.methods = methods
        #: None: authentication is off (every connection's principal is None).
        self.authenticate = authenticate
        #: None: every principal may subscribe to every registered topic.
        self.authorize = authorize
        self.settings = settings
        self._hello: tuple[RealtimeSettings, bytes] | None = None
        self.connections: set[Connection] = set()
        self.slots = Slots(lambda: self.settings)
        #: Topics with a local subscriber: done once the broker delivers them here.
        self._watches: dict[str, Shared[None]] = {}
        #: Snapshot builds running (`_snapshot`): held here until they end.
        self._building: set[asyncio.Future[None]] = set()
        self.calls = Calls(self, methods, lambda: self.settings)
        #: Snapshot builds in flight, at most `settings.max_snapshot_builds` (as constructed).
        self.admission = Admission(settings.max_snapshot_builds)

    async def start(self) -> None:
        await self.broker.start(self._route, self._lost)

    async def stop(self) -> None:
        await self.calls.stop()
        await self.broker.stop()

    @property
    def hello_limits(self) -> bytes:
        """What every connection's `hello` says of the limits (`frames.hello_limits`):
        built once per settings object, not per connect."""
        if self._hello is None or self._hello[0] is not self.settings:
            auth = self.authenticate is not None
            self._hello = (self.settings, hello_limits(self.settings, auth=auth))
        return self._hello[1]

    # ------------------------------------------------------------ connections

    def take_slot(self, address: str) -> bool:
        return self.slots.take(address)

    def release_slot(self, address: str) -> None:
        self.slots.release(address)

    def connect(self, conn: Connection) -> None:
        self.connections.add(conn)
        metrics.connected(conn.transport_name)
        log.debug("connection %s: open", conn.id, extra={"connection_id": conn.id})

    def disconnect(self, conn: Connection) -> None:
        conn.expire_in(None)
        for topic in list(conn.subscriptions):
            self.unsubscribe(conn, topic)
        if conn in self.connections:
            self.connections.discard(conn)
            metrics.disconnected(conn.transport_name)

    # ------------------------------------------------------------ subscribing

    async def subscribe(self, conn: Connection, topic: str, request_id: str | None) -> None:
        """Subscribe `conn` to `topic` and queue its snapshot, or an error frame. The
        steps and their order are `core.Subscribe`'s; this performs the ones that await."""
        settings = self.settings
        resolved = self.registry.resolve(topic)
        flow = Subscribe(
            conn.state, self._router, topic, request_id, max_snapshot_bytes=settings.max_snapshot_bytes
        )
        step = flow.start(
            known=resolved is not None, max_topics=settings.max_topics, authorize=self.authorize is not None
        )
        while step is not None:
            assert resolved is not None
            bound, params = resolved
            try:
                if step is Step.AUTHORIZE:
                    step = flow.authorized(await self._authorized(conn, bound.topic, params))
                elif step is Step.WATCH:
                    if flow.new:
                        self._patterns[topic] = bound.topic.pattern
                        metrics.subscribed(bound.topic.pattern)
                    await self._watch(topic, flow.first)
                    step = flow.watched()
                elif step is Step.READ_SEQ:
                    step = flow.seq_read(await self.broker.last_seq(topic))
                elif step is Step.BUILD:
                    shared = self._snapshot(conn, bound, params, topic, flow.seq)
                    step = flow.built(shared.result() if shared.done() else await shared.wait())
                elif step is Step.FIT:
                    assert flow.snapshot is not None
                    step = flow.fitted(
                        await conn.wait_room(flow.snapshot.size, settings.snapshot_room_timeout_s)
                    )
                else:  # Step.RELEASE
                    self.unsubscribe(conn, topic)
                    step = flow.released()
            except UnknownTopic:
                step = flow.failed(ErrorCode.UNKNOWN_TOPIC, "no such topic")
            except BrokerUnavailable as exc:
                extra = {"connection_id": conn.id, "topic": topic}
                log.warning("connection %s: cannot subscribe to %s: %s", conn.id, topic, exc, extra=extra)
                step = flow.failed(
                    ErrorCode.UNAVAILABLE, "the server cannot reach its backplane; retry later"
                )
            except Exception:
                log.exception(
                    "snapshot of %s failed", topic, extra={"connection_id": conn.id, "topic": topic}
                )
                step = flow.failed(ErrorCode.SNAPSHOT_FAILED, "could not build the snapshot")
        if flow.error is not None:
            metrics.client_error(flow.error)

    async def reauthorize(self, conn: Connection, principal: Principal, request_id: str) -> None:
        """`conn` presented a new credential for its principal (an `auth` frame whose token
        the handler authenticated): it is the connection's from now on, with its expiry,
        and every current subscription is authorized again under it. A topic no longer
        allowed gets `forbidden` (with the frame's id) and is unsubscribed. The others go
        on untouched - no snapshot, no gap - except one whose view changed (a provider
        that shapes its state by the principal, whose scopes changed): its state would be
        another principal's, so it gets a fresh snapshot, as a re-subscribe does. Then
        `authed`, after all of that."""
        old, conn.principal = conn.principal, principal
        conn.expire_in(principal.expires_in(datetime.now(UTC)))
        for topic in list(conn.subscriptions):
            resolved = self.registry.resolve(topic)
            if resolved is None:  # a subscribed name always resolves (the registry is fixed)
                continue
            bound, params = resolved
            allowed = await self._authorized(conn, bound.topic, params)
            if conn.closing:
                return
            if topic not in conn.subscriptions:  # ended meanwhile (the backplane lost it)
                continue
            if not allowed:
                self.unsubscribe(conn, topic)
                metrics.client_error(ErrorCode.FORBIDDEN)
                msg = "the new credential may not read this topic: unsubscribed"
                conn.send(error_frame(ErrorCode.FORBIDDEN, msg, id=request_id, topic=topic))
            elif bound.view(old) != bound.view(principal):
                await self.subscribe(conn, topic, request_id)
        if not conn.closing:
            conn.send(authed_frame(request_id, conn.auth_expires_in()))

    def state_changed(self, topic: str) -> None:
        """`topic`'s state changed without an event (an operator's repair, a change an
        app publishes nothing for): subscribers from now on get a snapshot built anew.
        Snapshots are shared by the subscribers of one topic version (`_snapshot`), and
        a version is its seq: without an event or this call, the seq says nothing moved."""
        self._snapshots.event(topic)

    def _snapshot(
        self, conn: Connection, bound: BoundTopic, params: dict[str, str], topic: str, seq: int
    ) -> Shared[Frame]:
        """The snapshot frame of `topic` at `seq` for `conn`'s view: built once for every
        subscriber who asks for the same (topic, seq, view), and the same bytes handed to
        each (`core.snapshots` says why that keeps the promise). A subscriber that leaves
        while it is built does not end it for the others (`shared.py`)."""
        principal = conn.principal
        k = snapshot_key(topic, seq, bound.view(principal))
        shared = self._snapshots.get(k)
        if shared is None:
            shared = Shared()
            self._snapshots.put(k, shared)
            build = asyncio.ensure_future(self._build(bound, params, principal, k, shared))
            self._building.add(build)
            build.add_done_callback(self._building.discard)
        return shared

    async def _build(
        self, bound: BoundTopic, params: dict[str, str], principal: Any, k: SnapshotKey, shared: Shared[Frame]
    ) -> None:
        """Build `k`'s frame into `shared`; a failure is every waiter's (each logs it), and
        the next subscriber of `k` tries anew."""
        topic, seq, _view = k
        timeout = self.settings.snapshot_timeout_s
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            await self._admitted(timeout)
            try:
                started = time.perf_counter()
                payload = await bound.snapshot_json(
                    params, timeout=max(0.0, deadline - loop.time()), principal=principal
                )
                metrics.snapshot_built(bound.topic.pattern, time.perf_counter() - started)
                frame = Frame(snapshot_frame(topic, seq, payload))
            finally:
                self.admission.release()
        except BaseException as exc:
            self._snapshots.drop(k)
            shared.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        self._snapshots.sized(k, frame.size)
        shared.set_result(frame)

    async def _admitted(self, timeout: float) -> None:
        """Until this build holds a build slot (`admission.py`): in arrival order, and
        within the snapshot's deadline."""
        admission = self.admission
        if admission.free:
            await admission.acquire()  # taken without waiting
            return
        metrics.builds_waiting(1)
        try:
            async with asyncio.timeout(timeout):
                await admission.acquire()
        except TimeoutError:
            raise TimeoutError(f"no snapshot build slot within {timeout:g} s") from None
        finally:
            metrics.builds_waiting(-1)

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
            self._wake(self._holds.release(topic))  # no local subscriber left to order against
            # Unwatched, a broker may number the topic anew (the in-process one forgets
            # its counter): a seq no longer names one version of it here.
            self._snapshots.event(topic)
            self.broker.unwatch(topic)

    def _lost(self, topic: str) -> None:
        """The broker may have lost `topic`'s events: its subscribers cannot be
        continued without a gap, so they are ended here (the next subscriber of the
        topic is a first one again, and watches anew) and their connections closed
        with 1013, to resync from fresh snapshots."""
        self._watches.pop(topic, None)
        pattern = self._patterns.pop(topic, "unknown")
        self._wake(self._holds.release(topic))
        self._snapshots.event(topic)
        subs = self._router.pop(topic)
        msg = "%s: backplane lost; closing its %d subscribers"
        log.warning(msg, topic, len(subs), extra={"topic": topic})
        for sub in subs:
            client = sub.client
            if client.unsubscribe(topic) is not None:
                metrics.unsubscribed(pattern)
            client.close(CloseCode.TRY_AGAIN_LATER, "backplane lost; resync", "backplane_lost")

    async def _watch(self, topic: str, first: bool) -> None:
        """Until the broker delivers `topic` to this node. The topic's first local
        subscriber asks the broker; the others wait for that answer (a network broker
        confirms a channel subscription asynchronously)."""
        if first:
            done = self._watches[topic] = Shared()
            try:
                await self.broker.watch(topic)
            except BaseException as exc:
                done.set_exception(exc)
                raise
            done.set_result(None)
            return
        pending = self._watches.get(topic)
        if pending is not None and not pending.done():
            await pending.wait()
        elif pending is not None:
            pending.result()
