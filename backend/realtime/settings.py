"""Tunable limits of the realtime layer, with the defaults a client learns in `hello`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RealtimeSettings:
    #: Outbound bytes buffered per client before it is evicted as a slow consumer (4008).
    max_queue_bytes: int = 1 << 20
    #: Largest inbound frame; bigger ones close the connection with 1009.
    max_frame_bytes: int = 64 << 10
    #: Topics one connection may be subscribed to at once.
    max_topics: int = 100
    #: Server WebSocket ping interval; a peer that misses a pong for half of it is dropped.
    heartbeat_s: int = 25
    #: permessage-deflate. Off by default: it compresses each frame per subscriber,
    #: so it multiplies fan-out cost (~2.4x measured) and defeats encode-once.
    compress: bool = False
    #: A snapshot provider slower than this fails the subscribe with `snapshot_failed`.
    snapshot_timeout_s: float = 10.0
    #: How long a close handshake (eviction, shutdown) may take before the transport is aborted.
    close_timeout_s: float = 2.0
    #: Origins allowed to open a WebSocket (e.g. "https://app.example.com"). None allows
    #: requests without an Origin header and same-origin browser requests only.
    allowed_origins: frozenset[str] | None = None
