"""Tunable limits of the realtime layer, with the defaults a client learns in `hello`.

Every limit here is a defence as much as a tuning knob: docs/security.md says which
attack each one bounds. Defaults suit one process on a small machine.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RealtimeSettings:
    #: Outbound bytes a client may cost the server (its outbox, events held for its
    #: snapshots, the transport's buffer and the kernel's send queue) before it is
    #: evicted as a slow consumer (4008).
    max_queue_bytes: int = 1 << 20
    #: Largest snapshot the server sends; a bigger one is refused with
    #: `snapshot_too_large` for that topic. At most `max_queue_bytes`; by default half
    #: of it (512 KiB), so a snapshot leaves room for the events that follow it.
    max_snapshot_bytes: int = 0
    #: How long a subscribe may wait for its snapshot to fit the client's budget
    #: (a fast reader's earlier frames draining) before the client is evicted.
    snapshot_room_timeout_s: float = 10.0
    #: Largest inbound frame; bigger ones close the connection with 1009.
    max_frame_bytes: int = 64 << 10
    #: Deepest nesting of arrays/objects accepted in a client frame (checked before
    #: parsing); deeper is `invalid_json`.
    max_json_depth: int = 32
    #: Topics one connection may be subscribed to at once.
    max_topics: int = 100
    #: Client frames per second per connection (token bucket: `frames_burst` at once,
    #: refilled at `frames_per_s`). Over it: `rate_limited`; a client that keeps sending
    #: `frames_burst` more frames while limited is closed with 1008.
    frames_per_s: float = 50.0
    frames_burst: int = 100
    #: Topics subscribed per second per connection (each builds a snapshot): same shape.
    #: The burst is `max_topics`, so a client that reconnects re-subscribes everything at
    #: once; each topic's snapshot is built in its own loop turn.
    subscribes_per_s: float = 20.0
    subscribes_burst: int = 100
    #: `auth` frames (in-band token refreshes) per minute per connection, as a token
    #: bucket with this burst: a client refreshing once per token lifetime needs one now
    #: and then, a flood (a token-guessing loop over an open socket, or a buggy client)
    #: is answered `rate_limited` without the `authenticate` hook running, and each is a
    #: refusal toward the 1008 like a frame over `frames_per_s`. Each is a frame too.
    auth_per_minute: int = 6
    #: Requests (`request` frames) one connection may have running at once; more are
    #: answered `too_many_requests` without running. Each request is also a client frame,
    #: so `frames_per_s` bounds how fast they come.
    max_requests_in_flight: int = 16
    #: A method slower than this is cancelled and answered `timeout`.
    request_timeout_s: float = 10.0
    #: Open WebSockets per process, and per client address; beyond: 503 before the upgrade.
    max_connections: int = 10_000
    max_connections_per_address: int = 256
    #: Server WebSocket ping interval; a peer that misses a pong for half of it is dropped.
    heartbeat_s: int = 25
    #: permessage-deflate. Off by default: it compresses each frame per subscriber,
    #: so it multiplies fan-out cost (~2.4x measured) and defeats encode-once.
    compress: bool = False
    #: A snapshot not built within this (its wait for a build slot included) fails the
    #: subscribe with `snapshot_failed`.
    snapshot_timeout_s: float = 10.0
    #: Snapshot builds in flight at once per process (`admission.py`); the others wait
    #: their turn in arrival order, so a reconnect storm neither opens a query per
    #: topic at once nor holds the event loop for all its builds in one go.
    max_snapshot_builds: int = 4
    #: Bytes of built snapshots kept for sharing (`core.snapshots`: one per topic, seq
    #: and view, dropped at the topic's next event), least recently used dropped first.
    snapshot_cache_bytes: int = 64 * 1024 * 1024
    #: Shutdown (SIGTERM, a worker restart) closes the clients with 1012 in up to
    #: `shutdown_batches` batches spread evenly over `shutdown_spread_s`, and tells each
    #: to reconnect after a random delay within `reconnect_window_s` (the close reason's
    #: `reconnect_within_ms`): the reconnects of a restart come spread out, not at once.
    shutdown_spread_s: float = 2.0
    shutdown_batches: int = 20
    reconnect_window_s: float = 5.0
    #: How long a close handshake (eviction, shutdown, protocol error) may take before
    #: the transport is aborted.
    close_timeout_s: float = 2.0
    #: Origins allowed to open a WebSocket (e.g. "https://app.example.com"). None: the
    #: loopback origins (http/https, localhost, 127.0.0.1, [::1]) on the port the
    #: request arrived on, and the page's own origin - the request's scheme and host
    #: (behind a trusted proxy, the ones it forwarded) - when that host passes
    #: `allowed_hosts`: a host that fails it (DNS rebinding) never vouches for itself.
    allowed_origins: frozenset[str] | None = None
    #: Host header values accepted (e.g. "app.example.com"), against DNS rebinding.
    #: None: the loopback names on the port the request arrived on.
    allowed_hosts: frozenset[str] | None = None
    #: Deadline of the `authenticate` and `authorize` hooks (a stuck token store must
    #: not hold connections open): past it the connection is refused / the topic forbidden.
    hook_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        # Compared as received: hosts lower-cased (Host is case-insensitive), origins
        # without a trailing slash (browsers never send one).
        if self.allowed_hosts is not None:
            object.__setattr__(
                self, "allowed_hosts", frozenset(h.strip().lower() for h in self.allowed_hosts)
            )
        if self.allowed_origins is not None:
            origins = frozenset(o.strip().rstrip("/") for o in self.allowed_origins)
            object.__setattr__(self, "allowed_origins", origins)
        if self.max_snapshot_bytes == 0:
            object.__setattr__(self, "max_snapshot_bytes", max(1, self.max_queue_bytes // 2))
        if not 0 < self.max_snapshot_bytes <= self.max_queue_bytes:
            raise ValueError("max_snapshot_bytes must be positive and at most max_queue_bytes")
        if self.frames_per_s <= 0 or self.subscribes_per_s <= 0:
            raise ValueError("rates must be positive")
        if self.max_requests_in_flight < 1 or self.request_timeout_s <= 0:
            raise ValueError("max_requests_in_flight must be at least 1 and request_timeout_s positive")
        if self.shutdown_spread_s < 0 or self.shutdown_batches < 1 or not 0 <= self.reconnect_window_s <= 60:
            raise ValueError("shutdown_spread_s >= 0, shutdown_batches >= 1, 0 <= reconnect_window_s <= 60")
        if self.max_snapshot_builds < 1:
            raise ValueError("max_snapshot_builds must be at least 1")
        if self.frames_burst < 1 or self.subscribes_burst < 1 or self.max_json_depth < 1:
            raise ValueError("bursts and max_json_depth must be at least 1")
        if self.auth_per_minute < 1:
            raise ValueError("auth_per_minute must be at least 1")
