"""Prometheus metrics of the realtime layer (the `metrics` extra), or no-ops without it.

Every label has a bounded set of values, so a scrape stays the same size however many
clients, sessions or topics there are: a topic's *pattern* (`sessions.activity:{session_id}`),
never its concrete name; a close code from the catalogue (anything else a peer sends is
`other`); an error code; an eviction reason from `EVICTION_REASONS`.

The hot path pays O(1) per published event and per flush (a loop tick, or an event
written at once: `writer.Flusher`), never per subscriber: frames delivered are counted
once per run of a topic's events in a flush (`add` subscribers x events); the
publish-to-write latency is sampled once per flush, for its oldest frame;
queued bytes are observed once per connection, when its close begins.

Several worker processes (`python -m backend --workers N`): prometheus-client's
multiprocess mode. With `PROMETHEUS_MULTIPROC_DIR` set before this module is imported,
each process writes its samples to files there and `render` merges them (gauges are
`livesum`: the sum over the live processes).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

from .closecodes import CloseCode

_prom: ModuleType | None
try:
    _prom = importlib.import_module("prometheus_client")
except ImportError:  # metrics off: every call below is a no-op
    _prom = None

#: Whether the collectors are real (prometheus-client is installed).
ENABLED = _prom is not None

#: Why the server closed a connection it did not want to keep (the `reason` label).
EVICTION_REASONS = ("queue_full", "snapshot_no_room", "rate_limited", "backplane_lost")

#: Why a node resynced its backplane subscription (the `reason` label).
RESYNC_REASONS = ("lost", "silent", "audit")

#: Close codes counted under their own label (the catalogue plus the standard range).
_KNOWN_CODES = frozenset(range(1000, 1016)) | frozenset(int(code) for code in CloseCode)


class _Noop:
    """Stands in for every collector and labelled child when metrics are off."""

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


_NOOP = _Noop()


class _Family:
    """A labelled collector with its children cached by label value (the label sets
    are bounded, so is the cache): `labels()` costs a lock and a tuple per call."""

    __slots__ = ("_children", "_make")

    def __init__(self, make: Callable[[str], Any]) -> None:
        self._make = make
        self._children: dict[str, Any] = {}

    def child(self, value: str) -> Any:
        found = self._children.get(value)
        if found is None:
            found = self._children[value] = self._make(value)
        return found


def _family(kind: str, name: str, doc: str, label: str, **kw: object) -> _Family:
    if _prom is None:
        return _Family(lambda _value: _NOOP)
    collector = getattr(_prom, kind)(name, doc, (label,), **kw)
    return _Family(lambda value: collector.labels(value))


def _single(kind: str, name: str, doc: str, **kw: object) -> Any:
    return _NOOP if _prom is None else getattr(_prom, kind)(name, doc, **kw)


_BYTES = (0, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216)
_SNAPSHOT_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_LATENCY_S = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)

_connections = _single(
    "Gauge", "realtime_connections", "Open WebSocket connections.", multiprocess_mode="livesum"
)
_connects = _single("Counter", "realtime_connects", "WebSocket connections accepted.")
#: The same count by transport (`websocket`, `sse`); `realtime_connections` stays the
#: total, unlabelled, so dashboards and alerts written for it keep working.
TRANSPORTS = ("websocket", "sse")
_by_transport = _family(
    "Gauge",
    "realtime_transport_connections",
    "Open connections, by transport (websocket, sse).",
    "transport",
    multiprocess_mode="livesum",
)
_disconnects = _family(
    "Counter", "realtime_disconnects", "WebSocket connections closed, by close code.", "code"
)
_subscriptions = _family(
    "Gauge",
    "realtime_subscriptions",
    "Subscriptions held, by topic pattern.",
    "pattern",
    multiprocess_mode="livesum",
)
_published = _family(
    "Counter",
    "realtime_events_published",
    "Events published from this process, by topic pattern.",
    "pattern",
)
_delivered = _family(
    "Counter", "realtime_frames_delivered", "Event frames handed to subscribers, by topic pattern.", "pattern"
)
_evictions = _family("Counter", "realtime_evictions", "Connections the server closed, by reason.", "reason")
_queued = _single(
    "Histogram",
    "realtime_connection_queued_bytes",
    "Bytes a connection still held (queued, held for snapshots, in flight) when its close began.",
    buckets=_BYTES,
)
_queued_now = _single(
    "Gauge",
    "realtime_queued_bytes",
    "Bytes held for all of this process's connections (queued, held for snapshots, in the "
    "transport's buffer), each shared frame counted once; sampled every few seconds.",
    multiprocess_mode="livesum",
)
_snapshot = _family(
    "Histogram",
    "realtime_snapshot_seconds",
    "Time to build a subscription's snapshot, by topic pattern.",
    "pattern",
    buckets=_SNAPSHOT_S,
)
_builds_waiting = _single(
    "Gauge",
    "realtime_snapshot_builds_waiting",
    "Snapshot builds waiting for a build slot (settings.max_snapshot_builds): a reconnect storm shows here.",
    multiprocess_mode="livesum",
)
_latency = _single(
    "Histogram",
    "realtime_publish_to_write_seconds",
    "From an event reaching this process's hub to its frames being written; sampled once per "
    "flush, for the flush's oldest event.",
    buckets=_LATENCY_S,
)
_client_errors = _family(
    "Counter", "realtime_client_errors", "Error frames sent to clients, by error code.", "code"
)
_requests = _family(
    "Counter",
    "realtime_requests",
    "Requests answered, by outcome: `ok` or the response's error code.",
    "outcome",
)
_resyncs = _family(
    "Counter",
    "realtime_backplane_resyncs",
    "Times this node stopped trusting its backplane subscription and resynced: `lost` (the "
    "connection failed), `silent` (it stopped answering: half-open), `audit` (an event was "
    "numbered and never arrived).",
    "reason",
)
_refused = _single(
    "Counter",
    "realtime_publishes_refused",
    "Fenced publishes the broker refused: a newer change of the topic was published first "
    "(a late publisher, or a leftover already published).",
)
_request_seconds = _family(
    "Histogram",
    "realtime_request_seconds",
    "From a request's validation to its response being queued, by method (registered "
    "methods only: the label set is the registry).",
    "method",
    buckets=_SNAPSHOT_S,
)


# ------------------------------------------------------------ what the hub reports


def close_code_label(code: int) -> str:
    return str(code) if code in _KNOWN_CODES else "other"


def connected(transport: str = "websocket") -> None:
    _connections.inc()
    _connects.inc()
    _by_transport.child(transport).inc()


def disconnected(transport: str = "websocket") -> None:
    _connections.dec()
    _by_transport.child(transport).dec()


def closing(code: int, eviction: str | None, held_bytes: int) -> None:
    """A connection's close began (once per connection)."""
    _disconnects.child(close_code_label(code)).inc()
    if eviction is not None:
        _evictions.child(eviction).inc()
    _queued.observe(held_bytes)


def subscribed(pattern: str) -> None:
    _subscriptions.child(pattern).inc()


def unsubscribed(pattern: str) -> None:
    _subscriptions.child(pattern).dec()


def published(pattern: str) -> None:
    _published.child(pattern).inc()


def delivered(pattern: str, frames: int) -> None:
    """Once per routed event: `frames` is its subscriber count on this process."""
    _delivered.child(pattern).inc(frames)


def snapshot_built(pattern: str, seconds: float) -> None:
    _snapshot.child(pattern).observe(seconds)


def builds_waiting(delta: int) -> None:
    _builds_waiting.inc(delta)


def written_after(seconds: float) -> None:
    _latency.observe(seconds)


def client_error(code: str) -> None:
    _client_errors.child(code).inc()


def answered(outcome: str) -> None:
    """A request was answered: `ok`, or its error code (a catalogue code, or one a
    registered method declares: bounded)."""
    _requests.child(outcome).inc()


def backplane_resynced(reason: str) -> None:
    """The backplane subscription was given up: one of `RESYNC_REASONS`."""
    _resyncs.child(reason).inc()


def publish_refused() -> None:
    _refused.inc()


def request_ran(method: str, seconds: float) -> None:
    _request_seconds.child(method).observe(seconds)


# ------------------------------------------------------------ exposition


def sample_queued(connections: Iterable[Any]) -> int:
    """Set the queued-bytes gauge from the hub's connections: the memory they hold in
    the process, each shared frame (an event, a snapshot: one object handed to every
    subscriber) counted once, plus each one's own transport buffer. A client's budget
    counts every byte it holds (`buffered_bytes`); the process holds shared bytes once,
    so a storm of subscribers to one snapshot costs one snapshot here.
    O(connections + frames held), so it is called on a timer, never per frame."""
    seen: set[int] = set()
    total = 0
    for conn in connections:
        total += conn.unshared_bytes
        for frame in conn.state.held_frames():
            if id(frame) not in seen:  # the frames are alive (held) while this runs
                seen.add(id(frame))
                total += frame.size
    _queued_now.set(total)
    return total


def render() -> tuple[bytes, str]:
    """The scrape body and its content type: this process's metrics, or every worker's
    merged when `PROMETHEUS_MULTIPROC_DIR` is set."""
    if _prom is None:
        return b"# metrics are off: install aiohttp-realtime[metrics]\n", "text/plain; charset=utf-8"
    registry = _prom.REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        registry = _prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return _prom.generate_latest(registry), _prom.CONTENT_TYPE_LATEST
