"""A rolling restart of two nodes behind nginx while writers and subscribers run
(issue 20, item 4): nobody loses anything.

Two `python -m backend` nodes share a PostgreSQL database and a Redis prefix of this
test's own, behind nginx run from `deploy/nginx.conf` (tests/proxy_support.py),
round-robin, TLS ending there. Writers create sessions through nginx, each write under
an `Idempotency-Key` and resent with it (connection error, 5xx, 429) until it is
acknowledged (tests/chaos/writers.py). Subscribers of `sessions.state`, on a close,
wait as the close advises (the library's `ClosedError.reconnect_delay()`: within the
`reconnect_within_ms` window of a 1012; backoff after a failed connect), reconnect
through nginx, subscribe again and rebuild their state from the snapshot and the
events that follow (checking that every event's seq is the next).

Node A is restarted (SIGTERM: it stops accepting, closes its clients with 1012 and the
window, exits; started again on its port; it serves), then node B, under that load.
Then the writers stop, and:

- every acknowledged write is in the final state (`GET /api/sessions` through nginx,
  which equals the database's);
- every subscriber's state equals it (awaited on each subscriber's own updates);
- no subscriber's events skipped a seq;
- no subscriber was without a live subscription for longer than the drain (its node's
  SIGTERM to its close: `shutdown_spread_s` + `close_timeout_s`) plus its reconnect
  window (`reconnect_window_s`) plus one failed connect's backoff (the client's first
  backoff window) - measured from its node's SIGTERM to its next snapshot, the bound
  computed from the nodes' settings and the client's constants.

Between the two restarts the test waits until nginx sends node A requests again (a
write in A's access log): nginx's passive health check (`max_fails=1 fail_timeout=10s`
in deploy/nginx.conf) takes a node that refused a connection out of rotation for 10 s,
and restarting B inside that time leaves nginx with no node it believes in: it answers
502 ("no live upstreams") until a fail_timeout runs out (tried: subscribers then went
10-25 s without a subscription, and this test fails).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from aiohttp_realtime import RealtimeSettings
from aiohttp_realtime.client import RECONNECT_BACKOFF_WINDOW_S, SUBPROTOCOL, ClosedError
from tests.chaos.followers import apply
from tests.chaos.truth import acknowledged_lost, read_truth
from tests.chaos.writers import Ledger, Write, Writer, fresh_key
from tests.pg_support import pg_admin_url, pg_url  # noqa: F401 - fixtures
from tests.proxy_support import (
    Certificate,
    Node,
    Proxy,
    backend_node,
    nginx,
    proxy_certificate,  # noqa: F401 - a fixture
    session_from,
)
from tests.redis_support import redis_base_url, redis_prefix  # noqa: F401 - fixtures
from tests.support import free_port

TOPIC = "sessions.state"
SUBSCRIBERS = 20
#: Two writers, each at this many writes per second (from addresses of their own: the
#: nodes limit writes per forwarded client address).
WRITERS, WRITE_RATE = 2, 5.0
#: The nodes run with the default settings: the drain and the window come from these.
SETTINGS = RealtimeSettings()
DRAIN_S = SETTINGS.shutdown_spread_s + SETTINGS.close_timeout_s
WINDOW_S = SETTINGS.reconnect_window_s
HINT = f"reconnect_within_ms={round(WINDOW_S * 1000)}"
#: A subscriber's backoff after a failed connect: full jitter, doubling from the
#: client's first-attempt window (`RECONNECT_BACKOFF_WINDOW_S`, 0.5 s) up to this.
BACKOFF_CAP_S = 4.0
#: The longest a subscriber may go without a live subscription, from its node's
#: SIGTERM: the drain, the reconnect window, and one failed connect's backoff.
BOUND_S = DRAIN_S + WINDOW_S + RECONNECT_BACKOFF_WINDOW_S
CONNECT_TIMEOUT_S = 10.0
#: How long a node may take to start serving, and nginx to send it requests again.
START_S, BACK_IN_ROTATION_S = 30.0, 20.0
#: How long the test waits for what it then checks (so that a failure says what it saw).
GIVE_UP_S = 20.0


# ---------------------------------------------------------------- subscribers


@dataclass
class Outage:
    """From the end of a live subscription (`down_at`, with its close) to the next
    snapshot (`live_at`), and what the subscriber slept meanwhile."""

    down_at: float
    code: int | None
    reason: str
    live_at: float | None = None
    window_slept: float = 0.0
    backoff_slept: float = 0.0
    failed_connects: int = 0


class Subscriber:
    """A client of `sessions.state` that reconnects as a close advises
    (`ClosedError.reconnect_delay()`), with its state rebuilt from every snapshot and
    the events after it.

    Over aiohttp's WebSocket directly, not `aiohttp_realtime.client.connect`: that client
    reads the close code from `ws.close_code`, which aiohttp sets to 1006 when its
    automatic close reply cannot be written - behind nginx, nearly always, since nginx
    closes the client's connection as soon as the node closes its own after the close
    frame - and a 1006 ignores the reason's window. Here the code is the close frame's."""

    def __init__(self, name: str, url: str, http: aiohttp.ClientSession) -> None:
        self.name = name
        self.url = url
        self.http = http
        self.items: dict[str, Any] = {}
        self.seq = 0
        self.live = False
        self.events = 0
        self.outages: list[Outage] = []
        self.gaps: list[str] = []
        self.errors: list[str] = []
        #: Notified on every frame and every change of `live`.
        self.changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"subscriber {self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def until(self, condition: Callable[[Subscriber], bool]) -> None:
        async with self.changed:
            await self.changed.wait_for(lambda: condition(self))

    @property
    def outage(self) -> Outage | None:
        """The outage under way, if any."""
        return self.outages[-1] if self.outages and self.outages[-1].live_at is None else None

    async def _run(self) -> None:
        failures = 0
        while True:
            closed: ClosedError | None = None
            try:
                closed = await self._connection()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                self.errors.append(f"{type(exc).__name__} {getattr(exc, 'status', '')}".rstrip())
            if self.live:
                failures = 0  # the backoff starts over once a subscription was live
                code, reason = (closed.code, closed.reason) if closed is not None else (None, "")
                self.outages.append(Outage(time.monotonic(), code, reason))
                async with self.changed:
                    self.live = False
                    self.changed.notify_all()
            outage = self.outage
            delay = closed.reconnect_delay() if closed is not None else None
            if closed is not None and delay is None:
                self.errors.append(f"told not to come back: {closed}")
                return
            if delay is not None and closed is not None and closed.reconnect_within_s is not None:
                if outage is not None:
                    outage.window_slept += delay
            else:  # a failed connect, a refused subscribe, a close advising backoff
                failures += 1
                delay = random.uniform(
                    0, min(BACKOFF_CAP_S, RECONNECT_BACKOFF_WINDOW_S * 2 ** (failures - 1))
                )
                if outage is not None:
                    outage.backoff_slept += delay
                    outage.failed_connects += 1
            await asyncio.sleep(delay)  # the reconnect delay the client's rule draws

    async def _connection(self) -> ClosedError | None:
        """One connection, subscribed, until it ends: its close (code None: dropped
        without one), or None after an error frame on the topic."""
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            ws = await self.http.ws_connect(self.url, protocols=(SUBPROTOCOL,))
        try:
            await ws.send_json({"type": "subscribe", "topics": [TOPIC]})
            while True:
                msg = await ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    if not await self._on(json.loads(msg.data)):
                        return None
                elif msg.type is aiohttp.WSMsgType.CLOSE:
                    return ClosedError(msg.data, msg.extra or "")
                else:
                    return ClosedError(None)
        finally:
            await ws.close()

    async def _on(self, frame: dict[str, Any]) -> bool:
        """Apply a frame; False for an error on the topic (resubscribe on a new connection)."""
        async with self.changed:
            try:
                kind = frame["type"]
                if kind == "snapshot" and frame["topic"] == TOPIC:
                    apply(TOPIC, self.items, frame)
                    self.seq = frame["seq"]
                    self.live = True
                    if (outage := self.outage) is not None:
                        outage.live_at = time.monotonic()
                elif kind == "event" and frame["topic"] == TOPIC:
                    if not self.live or frame["seq"] != self.seq + 1:
                        self.gaps.append(f"seq {frame['seq']} after {self.seq} (live: {self.live})")
                    self.seq = frame["seq"]
                    self.events += 1
                    apply(TOPIC, self.items, frame)
                elif kind == "error" and frame.get("topic") == TOPIC:
                    self.errors.append(f"{frame['code']}: {frame['message']}")
                    return False
                return True
            finally:
                self.changed.notify_all()


async def every(
    subscribers: list[Subscriber], condition: Callable[[Subscriber], bool], *, timeout: float
) -> None:
    """Until `condition` holds for every subscriber (each awaited on its own updates)."""
    async with asyncio.timeout(timeout):
        await asyncio.gather(*(s.until(condition) for s in subscribers))


# ---------------------------------------------------------------- nodes


@dataclass
class Restart:
    node: str
    sigterm_at: float
    exited_at: float
    serving_at: float
    status: int | None


@dataclass
class Nodes:
    """The two nodes, each in an exit stack of its own so that one can be restarted."""

    args: tuple[str, ...]
    ports: dict[str, int] = field(default_factory=dict)
    running: dict[str, Node] = field(default_factory=dict)
    stacks: dict[str, contextlib.AsyncExitStack] = field(default_factory=dict)
    restarts: list[Restart] = field(default_factory=list)

    async def start(self, name: str) -> Node:
        stack = contextlib.AsyncExitStack()
        try:
            node = await stack.enter_async_context(backend_node(*self.args, port=self.ports.get(name)))
        except BaseException:
            await stack.aclose()
            raise
        self.ports[name], self.running[name], self.stacks[name] = node.port, node, stack
        return node

    async def restart(self, name: str) -> Node:
        """SIGTERM, its exit, the same command on the same port, serving."""
        node = self.running[name]
        sigterm_at = time.monotonic()
        node.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(START_S):
            status = await node.process.wait()
        exited_at = time.monotonic()
        await self.stacks.pop(name).aclose()
        node = await self.start(name)
        self.restarts.append(Restart(name, sigterm_at, exited_at, time.monotonic(), status))
        return node

    async def close(self) -> None:
        for stack in self.stacks.values():
            await stack.aclose()


@contextlib.asynccontextmanager
async def deployment(
    redis_url: str, prefix: str, database: str, certificate: Certificate
) -> AsyncIterator[tuple[Nodes, Proxy]]:
    public = free_port()
    nodes = Nodes(
        (
            *("--broker", redis_url, "--redis-prefix", prefix, "--database", database),
            # Behind the proxy: it is trusted (it connects from 127.0.0.1), its host allowed.
            *("--forwarded-allow-ips", "127.0.0.1", "--allow-host", f"127.0.0.1:{public}"),
        )
    )
    try:
        await nodes.start("A")
        await nodes.start("B")
        async with nginx([nodes.ports["A"], nodes.ports["B"]], certificate, port=public) as proxy:
            yield nodes, proxy
    finally:
        await nodes.close()


@dataclass
class Entry:
    """The writers' one way in: nginx (a `Node` to tests/chaos/writers.py)."""

    name: str
    url: str


# ---------------------------------------------------------------- the test


async def test_a_rolling_restart_behind_nginx_loses_no_write_and_no_subscriber(
    redis_base_url: str,  # noqa: F811
    redis_prefix: str,  # noqa: F811
    pg_url: str,  # noqa: F811
    proxy_certificate: Certificate,  # noqa: F811
) -> None:
    sessions: list[aiohttp.ClientSession] = []

    def http(address: int) -> aiohttp.ClientSession:
        session = session_from(f"127.0.0.{address}", proxy_certificate)
        sessions.append(session)
        return session

    subscribers: list[Subscriber] = []
    writers: list[Writer] = []
    ledger = Ledger()
    try:
        async with deployment(redis_base_url, redis_prefix, pg_url, proxy_certificate) as (nodes, proxy):
            try:
                entry = Entry("nginx", proxy.url("").rstrip("/"))
                # Subscribers from five client addresses, writers from two more.
                subscribers = [
                    Subscriber(f"s{i}", proxy.ws_url(), http(2 + i % 5)) for i in range(SUBSCRIBERS)
                ]
                for s in subscribers:
                    s.start()
                await every(subscribers, lambda s: s.live, timeout=GIVE_UP_S)
                for w in range(WRITERS):

                    def make(n: int, w: int = w) -> Write:
                        return Write("create", "http", {"title": f"writer{w}-{n}"}, fresh_key())

                    writer = Writer(
                        f"w{w}", [entry], "http", http(20 + w), make, ledger, rate=WRITE_RATE, retry=True
                    )
                    writers.append(writer)
                    writer.start()
                # The load runs: every subscriber has seen writes arrive.
                await every(subscribers, lambda s: s.events >= 3, timeout=GIVE_UP_S)

                node_a = await nodes.restart("A")
                # Back in nginx's rotation before B goes (see the module docstring).
                await node_a.line(r'aiohttp\.access: .*"POST /api/sessions', timeout=BACK_IN_ROTATION_S)
                await nodes.restart("B")
                # Every subscriber live again (how long it took is checked below).
                with contextlib.suppress(TimeoutError):
                    await every(subscribers, lambda s: s.live, timeout=GIVE_UP_S)
                for writer in writers:
                    await writer.stop(timeout=GIVE_UP_S)

                async with http(30).get(f"{entry.url}/api/sessions") as resp:
                    assert resp.status == 200
                    final = {s["id"]: s for s in await resp.json()}
                # Converged: each subscriber's own updates awaited until it holds that.
                with contextlib.suppress(TimeoutError):
                    await every(subscribers, lambda s: s.live and s.items == final, timeout=GIVE_UP_S)
            finally:  # before nginx goes: its exit would be one more close for each
                for s in subscribers:
                    await s.stop()
                for writer in writers:
                    await writer.stop(timeout=1)
        truth = (await read_truth(pg_url, {TOPIC})).topics[TOPIC]
        lost = await acknowledged_lost(ledger, pg_url)
    finally:
        for session in sessions:
            await session.close()

    # Both nodes drained cleanly and came back; each had subscribers to close.
    assert [(r.node, r.status) for r in nodes.restarts] == [("A", 0), ("B", 0)]
    outages = [(s, o) for s in subscribers for o in s.outages]
    for r in nodes.restarts:
        assert any(r.sigterm_at <= o.down_at <= r.exited_at for _, o in outages), (
            f"{r.node} closed no subscriber"
        )

    # Every write was acknowledged in the end, and every acknowledged one is there.
    assert len(ledger.writes) > 20
    assert [w.outcome for w in ledger.writes if w.outcome != "ok"] == []
    assert final == truth, "GET /api/sessions through nginx differs from the database"
    assert lost == []
    titles = {session["title"] for session in final.values()}
    assert {w.value for w in ledger.writes} <= titles

    # Every subscriber converged, without a gap, and was told to come back each time.
    for s in subscribers:
        assert s.items == final, (
            f"{s.name} diverged ({len(s.items)} sessions, {len(final)} final; live {s.live}, "
            f"last outage {s.outages[-1:]}): {s.errors[-3:]}"
        )
        assert s.gaps == [], f"{s.name}: {s.gaps}"
    for s, o in outages:
        assert (o.code, HINT in o.reason) == (1012, True), f"{s.name}: closed {o.code} {o.reason!r}"

    # No one waited longer than the drain, its window and a backoff: measured from the
    # SIGTERM of the node that closed it to its next snapshot.
    measured = []
    for s, o in outages:
        assert o.live_at is not None, f"{s.name} never came back: {s.errors[-3:]}"
        restart = next((r for r in nodes.restarts if r.sigterm_at <= o.down_at <= r.exited_at), None)
        assert restart is not None, f"{s.name} was closed outside any restart: {o}"
        measured.append((o.live_at - restart.sigterm_at, s.name, o))
    took, name, outage = max(measured, key=lambda m: m[0])
    assert took <= BOUND_S, (
        f"{name} was without a subscription for {took:.2f} s after its node's SIGTERM, over "
        f"{BOUND_S:g} s (drain {DRAIN_S:g} + window {WINDOW_S:g} + backoff {RECONNECT_BACKOFF_WINDOW_S:g}): "
        f"{outage}; errors {[e for s in subscribers for e in s.errors][:5]}"
    )
