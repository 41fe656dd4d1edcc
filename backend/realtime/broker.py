"""The broker: assigns each topic's seq and hands published events to local fan-out.

Delivery contract every implementation keeps (the hub and clients rely on it):
- per topic, seqs start at 1 and grow by exactly 1 per published event;
- `deliver` is called for the topic's events in seq order, each at most once;
- `last_seq(topic)` is at least the seq of every event whose `publish` returned
  before the call, so a snapshot built after it reflects them all.
If an implementation loses events (a backplane reconnect), the hub sees a seq gap
and closes the affected connections; clients resync. Never a silent gap.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

#: Local fan-out: (topic, seq, serialised payload). Must not await or raise.
Deliver = Callable[[str, int, bytes], None]


class Broker(Protocol):
    async def start(self, deliver: Deliver) -> None:
        """Begin delivering this node's and other nodes' events to `deliver`."""

    async def stop(self) -> None: ...

    async def publish(self, topic: str, payload: bytes) -> int:
        """Assign the next seq of `topic`, deliver to every node, return the seq."""

    async def last_seq(self, topic: str) -> int:
        """The seq of the latest event published on `topic` (0 if none)."""


class MemoryBroker:
    """Single-process broker: seq assignment and fan-out happen synchronously
    inside `publish`, so the caller's state change and its event are atomic with
    respect to other tasks as long as it does not await between them."""

    def __init__(self) -> None:
        self._seqs: dict[str, int] = {}
        self._deliver: Deliver | None = None

    async def start(self, deliver: Deliver) -> None:
        self._deliver = deliver

    async def stop(self) -> None:
        self._deliver = None

    async def publish(self, topic: str, payload: bytes) -> int:
        seq = self._seqs[topic] = self._seqs.get(topic, 0) + 1
        if self._deliver is not None:
            self._deliver(topic, seq, payload)
        return seq

    async def last_seq(self, topic: str) -> int:
        return self._seqs.get(topic, 0)
