"""The broker: assigns each topic's seq and hands published events to local fan-out.

Delivery contract every implementation keeps (the hub and clients rely on it):
- per topic, seqs start at 1 and grow by exactly 1 per published event;
- `deliver` is called for the topic's events in seq order, each at most once;
- `last_seq(topic)` is at least the seq of every event whose `publish` returned
  before the call, so a snapshot built after it reflects them all;
- the hub calls `watch(topic)` before its first local subscriber of a topic reads
  `last_seq`, and `unwatch(topic)` after its last one left. Per-topic state may be
  dropped once no node watches a topic (a topic nobody watches has nobody who holds
  one of its seqs), so numbering may restart from 1 after an unwatched period.
If an implementation loses events (a backplane reconnect), the hub sees a seq gap
and closes the affected connections; clients resync. Never a silent gap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

#: Local fan-out: (topic, seq, serialised payload). Must not await or raise.
Deliver = Callable[[str, int, bytes], None]
#: A watched topic's events may have been lost (a backplane connection dropped): its
#: local subscribers must resync. Must not await or raise.
Lost = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Fence:
    """Orders a topic's publishes by the commit order of their changes (`Broker.publish`).

    `token` grows with that order (the demo's PostgreSQL store: the event's outbox row
    id, inserted under the topic's lock); `scope` names the numbering it comes from (the
    store: its database's generation), so that tokens of another numbering - a database
    recreated or restored, whose ids start again lower - are never compared with these."""

    scope: str
    token: int


class BrokerUnavailable(Exception):
    """The backplane cannot be reached now; the caller may retry later."""


class Broker(Protocol):
    async def start(self, deliver: Deliver, lost: Lost | None = None) -> None:
        """Begin delivering this node's and other nodes' events to `deliver`; report
        topics whose events may have been lost to `lost`."""

    async def stop(self) -> None: ...

    @property
    def healthy(self) -> bool:
        """Whether events flow now (false while a backplane is unreachable)."""

    async def watch(self, topic: str) -> None:
        """This node has a subscriber of `topic`: from when this returns, every event
        of `topic` published anywhere is delivered here."""

    def unwatch(self, topic: str) -> None:
        """This node's last subscriber of `topic` left (must not await or raise)."""

    async def publish(self, topic: str, payload: bytes, fence: Fence | None = None) -> int:
        """Assign the next seq of `topic`, deliver to every node watching it, return the
        seq (0 when the implementation knows nobody watches and numbered nothing).

        A fenced publish whose token is not greater than the last one published on the
        topic in the same scope is refused and returns 0: a late or repeated publisher
        never delivers an older state after a newer one (docs/scaling.md)."""

    async def last_seq(self, topic: str) -> int:
        """The seq of the latest event published on `topic` (0 if none)."""

    async def check(self) -> None:
        """A bounded probe for readiness: returns if events flow now, else raises
        `BrokerUnavailable` (within the broker's timeout, never hangs)."""


class MemoryBroker:
    """Single-process broker: seq assignment and fan-out happen synchronously
    inside `publish`, so the caller's state change and its event are atomic with
    respect to other tasks as long as it does not await between them.

    It keeps a counter for each watched topic only: an unwatched topic's counter is
    dropped, and publishing to it delivers nothing and returns 0. So its memory is
    bounded by the topics subscribed right now, not by every topic ever published
    (one per session, say)."""

    def __init__(self) -> None:
        self._seqs: dict[str, int] = {}
        self._deliver: Deliver | None = None

    @property
    def healthy(self) -> bool:
        return True

    async def start(self, deliver: Deliver, lost: Lost | None = None) -> None:
        self._deliver = deliver

    async def stop(self) -> None:
        self._deliver = None

    async def watch(self, topic: str) -> None:
        self._seqs.setdefault(topic, 0)

    def unwatch(self, topic: str) -> None:
        self._seqs.pop(topic, None)

    async def publish(self, topic: str, payload: bytes, fence: Fence | None = None) -> int:
        # One process: a unit's commit and publish cannot be overtaken, so `fence` has
        # nothing to refuse here.
        seq = self._seqs.get(topic)
        if seq is None:
            return 0
        seq = self._seqs[topic] = seq + 1
        if self._deliver is not None:
            self._deliver(topic, seq, payload)
        return seq

    def __len__(self) -> int:
        """Topics whose state is kept (the watched ones)."""
        return len(self._seqs)

    async def last_seq(self, topic: str) -> int:
        return self._seqs.get(topic, 0)

    async def check(self) -> None:
        return None
