"""One snapshot per topic version and view, shared by every subscriber who asks for it.

After a deploy every tab resubscribes at once; building and encoding the same snapshot
once per subscriber (and holding a copy per connection) made that moment cost 4-5x the
CPU and 10-14x the memory of sending the same bytes. So a snapshot is keyed by
`(topic, seq, view)` and built once (single flight); every subscriber of the key gets
the same encoded frame (one bytes object in every outbox).

Why the key keeps the promise: a subscriber's snapshot must reflect at least every
event up to the seq *it* read (after registering, so every later event is held for
it). A snapshot built by anyone after a read of the same seq reflects at least that
seq too, wherever the two reads and the build fall in time: had an event been
numbered before this subscriber's read, it would have read a larger seq and another
key. Reusing a snapshot for another seq - for instance after an event - would hand
out one older than its seq (tests/test_core.py's model fails on that mutation).

`view` separates principals whose snapshots may differ (`topics.View`): by default a
provider that takes the principal is keyed by the whole principal (never one
principal's state handed to another), one that does not has a single view, and a
topic may declare its own key (a tenant, a role). Each subscriber is still authorized
on its own before it is handed a shared snapshot. Entries of a topic are dropped when its next event is
routed here (no subscriber reads that seq any more) - and when the node stops
watching it, since a broker may then number it anew (the in-process broker forgets an
unwatched topic's counter: the same seq would name another state). The cache is
bounded in bytes, least recently used first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from typing import Generic, TypeVar

V = TypeVar("V")

#: (topic, seq, view): the view is any hashable value (`topics.View` decides it).
Key = tuple[str, int, Hashable]


def key(topic: str, seq: int, view: Hashable) -> Key:
    return (topic, seq, view)


class SnapshotCache(Generic[V]):
    """Snapshots by key (`V`: the I/O layer's value - a build in flight, then its frame),
    bounded by `max_bytes` of finished ones."""

    __slots__ = ("_by_topic", "_entries", "_max_bytes", "_sizes", "bytes")

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._entries: OrderedDict[Key, V] = OrderedDict()
        self._sizes: dict[Key, int] = {}
        self._by_topic: dict[str, set[Key]] = {}
        #: Bytes of the finished snapshots kept.
        self.bytes = 0

    def get(self, k: Key) -> V | None:
        value = self._entries.get(k)
        if value is not None:
            self._entries.move_to_end(k)
        return value

    def put(self, k: Key, value: V) -> None:
        """A build starts (or a finished one is kept): later asks of `k` share it."""
        self._entries[k] = value
        self._by_topic.setdefault(k[0], set()).add(k)

    def sized(self, k: Key, size: int) -> None:
        """The build of `k` finished with `size` bytes: counted, and the oldest dropped
        past the bound (never `k` itself: its subscribers are being served)."""
        if k not in self._entries:
            return
        self._sizes[k] = size
        self.bytes += size
        for old in list(self._entries):
            if self.bytes <= self._max_bytes:
                break
            if old != k:
                self.drop(old)

    def drop(self, k: Key) -> None:
        if self._entries.pop(k, None) is None:
            return
        self.bytes -= self._sizes.pop(k, 0)
        keys = self._by_topic.get(k[0])
        if keys is not None:
            keys.discard(k)
            if not keys:
                del self._by_topic[k[0]]

    def event(self, topic: str) -> None:
        """An event of `topic` was routed here (its snapshots are of older seqs now), or
        the node stopped watching it (its seqs may be reused): drop its snapshots."""
        for k in list(self._by_topic.get(topic, ())):
            self.drop(k)

    def __len__(self) -> int:
        return len(self._entries)
