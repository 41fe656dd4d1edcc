"""Subscribers that keep the promise honest: a `Follower` holds one connection to one
node, subscribed to some topics, and rebuilds each topic's state from its snapshot and
events, as a client does. It checks every event's seq: the one after the last, or it is
a FAILURE (a silent gap, or a repeat or reorder) - the promise allows a close, never a
gap. When the connection closes (1013, 1011, 1006, ...) it records the close and
reconnects with backoff, subscribes again and replaces its state from fresh snapshots
(a resync), as `docs/protocol.md` tells clients to; a subscribe answered `unavailable`
is retried the same way."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.chaos.sockets import Frame, RawSocket
from tests.test_demo_topics import apply_activity
from tests.test_simulator import apply_collection

BACKOFF_BASE_S, BACKOFF_CAP_S = 0.1, 1.0
#: Error codes after which a topic is subscribed again (after a backoff).
RETRIED = frozenset({"unavailable", "snapshot_failed", "rate_limited", "timeout", "internal_error"})


@dataclass
class View:
    """One topic as a client sees it."""

    live: bool = False
    seq: int = 0
    items: dict[str, Any] = field(default_factory=dict)
    snapshots: int = 0
    #: The topic's session was deleted (`unknown_topic`): nothing to follow.
    gone: bool = False


@dataclass
class Violation:
    topic: str
    what: str  # "gap", "repeat or reorder", "event before snapshot"
    expected: int
    got: int
    at: float

    def __str__(self) -> str:
        return f"{self.what} on {self.topic}: expected seq {self.expected}, got {self.got}"


def apply(topic: str, items: dict[str, Any], frame: Frame) -> None:
    if topic == "sessions.state":
        apply_collection(items, frame, "sessions", "session")
    elif topic == "terminals.state":
        apply_collection(items, frame, "terminals", "terminal")
    else:
        apply_activity(items, frame)


class Follower:
    def __init__(self, name: str, url: str, topics: list[str], http: aiohttp.ClientSession) -> None:
        self.name = name
        self.url = url
        self.http = http
        self.views = {topic: View() for topic in topics}
        self.violations: list[Violation] = []
        #: (time, close code) of every connection that ended while following.
        self.closes: list[tuple[float, int | None]] = []
        #: (time, topic): a snapshot that replaced a state already held (a resync).
        self.resyncs: list[tuple[float, str]] = []
        #: (time, topic, code) of every error frame.
        self.errors: list[tuple[float, str | None, str]] = []
        #: Every session title seen on `sessions.state`, in snapshots and events.
        self.titles: set[str] = set()
        self.events = 0
        self.connects = 0
        self._socket: RawSocket | None = None
        self._task: asyncio.Task[None] | None = None
        self._retries: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ control

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"follower {self.name}")

    async def stop(self) -> None:
        for task in [self._task, *self._retries]:
            if task is not None:
                task.cancel()
        for task in [self._task, *self._retries]:
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._socket is not None:
            await self._socket.close()

    @property
    def live(self) -> bool:
        return all(v.live or v.gone for v in self.views.values())

    def disturbed_since(self, t: float) -> bool:
        """Closed, or resynced, at or after `t` (monotonic)."""
        return any(at >= t for at, _ in self.closes) or any(at >= t for at, _ in self.resyncs)

    def first_disturbance_since(self, t: float) -> float | None:
        times = [at for at, _ in self.closes if at >= t] + [at for at, _ in self.resyncs if at >= t]
        return min(times) if times else None

    # ------------------------------------------------------------ the connection

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                self._socket = await RawSocket.connect(self.http, self.url)
            except (aiohttp.ClientError, OSError, TimeoutError):
                failures += 1
                await asyncio.sleep(_backoff(failures))  # reconnect backoff, as clients do
                continue
            self.connects += 1
            connected_at = time.monotonic()
            socket = self._socket
            socket.read_into(self._on_frame)
            topics = [t for t, v in self.views.items() if not v.gone]
            if topics:
                await socket.send({"type": "subscribe", "topics": topics})
            await socket.closed.wait()
            self.closes.append((time.monotonic(), socket.close_code))
            for view in self.views.values():
                view.live = False
            await socket.close()
            lived = self.closes[-1][0] - connected_at
            failures = 1 if lived > 5 else failures + 1  # backoff resets once a connection lasted
            await asyncio.sleep(_backoff(failures))

    def _on_frame(self, frame: Frame) -> None:
        kind, topic, now = frame.get("type"), frame.get("topic"), time.monotonic()
        if kind == "error":
            code = str(frame.get("code"))
            self.errors.append((now, topic if isinstance(topic, str) else None, code))
        if not isinstance(topic, str) or topic not in self.views:
            return
        view = self.views[topic]
        if kind == "snapshot":
            if view.snapshots:
                self.resyncs.append((now, topic))
            view.snapshots += 1
            view.seq = frame["seq"]
            apply(topic, view.items, frame)
            view.live = True
            self._saw_titles(topic, frame)
        elif kind == "event":
            self.events += 1
            seq = frame["seq"]
            if not view.live:
                self.violations.append(Violation(topic, "event before snapshot", view.seq + 1, seq, now))
            elif seq != view.seq + 1:
                what = "gap" if seq > view.seq + 1 else "repeat or reorder"
                self.violations.append(Violation(topic, what, view.seq + 1, seq, now))
            view.seq = seq
            apply(topic, view.items, frame)
            self._saw_titles(topic, frame)
        elif kind == "error":
            view.live = False
            code = str(frame.get("code"))
            if code == "unknown_topic":
                view.gone = True
            elif code in RETRIED:
                self._retry(topic)

    def _saw_titles(self, topic: str, frame: Frame) -> None:
        if topic != "sessions.state":
            return
        payload = frame["payload"]
        if frame["type"] == "snapshot":
            self.titles.update(s["title"] for s in payload["sessions"])
        elif payload.get("op") == "upsert":
            self.titles.add(payload["session"]["title"])

    def _retry(self, topic: str) -> None:
        socket = self._socket

        async def later() -> None:
            await asyncio.sleep(random.uniform(BACKOFF_BASE_S, BACKOFF_CAP_S))  # retry backoff
            if socket is self._socket and socket is not None and not socket.closed.is_set():
                await socket.send({"type": "subscribe", "topics": [topic]})

        task = asyncio.create_task(later())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)


def _backoff(failures: int) -> float:
    """Full jitter, as docs/protocol.md recommends."""
    return random.uniform(0, min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**failures))


async def live_within(followers: list[Follower], *, timeout: float) -> list[str]:
    """Until every follower holds a snapshot of each of its topics (polled): the names
    of those that still do not after `timeout`."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout):
            while not all(f.live for f in followers):  # noqa: ASYNC110 - many sockets, no one event
                await asyncio.sleep(0.05)
    return [f.name for f in followers if not f.live]


async def all_live(followers: list[Follower], *, timeout: float) -> None:
    """As `live_within`, raising if one is not (for a test's set-up)."""
    stuck = await live_within(followers, timeout=timeout)
    if stuck:
        raise AssertionError(f"followers not live after {timeout} s: {stuck}")


async def until_disturbed(followers: list[Follower], *, since: float, timeout: float) -> None:
    """Until every follower was closed or resynced at or after `since` (polled), or
    `timeout` (then the caller counts who was not)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(max(0.0, timeout)):
            while not all(f.disturbed_since(since) for f in followers):  # noqa: ASYNC110
                await asyncio.sleep(0.05)  # many sockets, no one event
