"""One connection's subscriptions and what it is owed, as a state machine without I/O.

Per subscription: `subscribe` registers it *buffering* (events are held, not sent);
the caller then reads the topic's seq and builds the snapshot; `go_live` sends the
snapshot, drops the held events it already reflects (seq <= its seq), sends the
rest, and from then on events pass straight through. A live subscription that sees
a seq other than last + 1 closes the connection (1011): events were lost upstream,
and a silent gap is the one thing never done. So, per topic, a client gets a
snapshot, then every later event in order, or a close (docs/protocol.md).

Everything for the client goes into its `Outbox`, whose budget covers held events
too; a frame that does not fit evicts the client (4008). `io.ready` tells the I/O
layer that there is something to write or a close to perform; it is called once
per transition to non-empty, so a burst costs the writer one wake-up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol, TypeVar

from ..closecodes import CloseCode
from ..frames import Frame
from .outbox import Outbox

_T = TypeVar("_T")


class ClientIO(Protocol):
    """What a `ClientState` asks of the I/O layer below it (one object, not two
    callbacks: two bound methods per connection cost 128 bytes each connection)."""

    def ready(self, state: ClientState) -> None:
        """There is something to write, or a close to perform."""

    def in_flight(self) -> int:
        """Bytes in flight below the writer now (transport and kernel): re-read on an
        overflow, so that a client that has read since is not evicted for bytes it
        already took."""
        ...


#: A subscription's held events when it holds none (shared: most never hold any).
_NONE_HELD: list[tuple[int, Frame]] = []


class Subscription:
    """A connection's subscription to one topic. `epoch` grows on every re-subscribe,
    so a snapshot built for an earlier request cannot go live."""

    __slots__ = ("client", "epoch", "held", "last_seq", "live", "topic")

    def __init__(self, client: ClientState, topic: str) -> None:
        self.client = client
        self.topic = topic
        self.epoch = 0
        self.live = False
        self.last_seq = 0
        #: Events held while the snapshot is built: (seq, frame). The shared empty
        #: list until one is held (never appended to: `deliver` replaces it).
        self.held: list[tuple[int, Frame]] = _NONE_HELD


class ClientState(Outbox):
    """A connection's subscriptions and what it is owed. It *is* its `Outbox` (one
    object per connection, not two: memory per idle connection is a target, and the
    fan-out reaches the budget without one more pointer); `outbox` names that part."""

    __slots__ = ("close_code", "close_reason", "eviction", "io", "subscriptions")

    def __init__(self, limit: int, io: ClientIO) -> None:
        super().__init__(limit)
        self.subscriptions: dict[str, Subscription] = {}
        self.close_code: int | None = None
        self.close_reason = ""
        #: Why the server closes it, when it chose to (`metrics.EVICTION_REASONS`).
        self.eviction: str | None = None
        #: The I/O layer below (its `ready` is called by `Router.fan_out` too, which
        #: inlines `deliver`'s common case).
        self.io = io

    @property
    def outbox(self) -> Outbox:
        """This client's frames and byte budget (the same object)."""
        return self

    @property
    def closing(self) -> bool:
        return self.close_code is not None

    # ------------------------------------------------------------ output

    def send(self, frame: Frame) -> None:
        """Queue a frame for the next write; evict if it does not fit the budget."""
        if self.close_code is not None:
            return
        was_empty = not self.frames
        if self.push(frame) or self._remeasured(self.push, frame):
            if was_empty:
                self.io.ready(self)
        else:
            self.evict()

    def close(self, code: int, reason: str, eviction: str | None = None) -> None:
        """Ask the I/O layer to close after what is queued (the first request wins).
        `eviction` names why, when the server closes a client it will not keep."""
        if self.close_code is None:
            self.close_code, self.close_reason, self.eviction = code, reason, eviction
            for sub in self.subscriptions.values():
                self._release(sub)
            self.io.ready(self)

    def evict(self, reason: str = "queue_full") -> None:
        """Slow consumer: drop everything queued for it, then close with 4008."""
        if self.close_code is None:
            self.outbox.discard()
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer", reason)

    # ------------------------------------------------------------ subscriptions

    def subscribe(self, topic: str) -> tuple[Subscription, bool]:
        """Register (or reset) `topic`'s subscription as buffering, before its seq is
        read and its snapshot built. Returns it and whether it is new."""
        sub = self.subscriptions.get(topic)
        new = sub is None
        if sub is None:
            sub = self.subscriptions[topic] = Subscription(self, topic)
        else:
            self._release(sub)
        sub.epoch += 1
        sub.live = False
        return sub, new

    def unsubscribe(self, topic: str) -> Subscription | None:
        sub = self.subscriptions.pop(topic, None)
        if sub is not None:
            self._release(sub)
            sub.live = False
        return sub

    def deliver(self, sub: Subscription, seq: int, frame: Frame) -> None:
        """An event of `sub`'s topic, in the topic's seq order. (The fan-out's common case
        - a live subscription owed exactly this run - does not come here: `Router`.)"""
        if self.close_code is not None:
            return
        if sub.live:
            if seq == sub.last_seq + 1:
                sub.last_seq = seq
                self.send(frame)  # over budget: re-measure, then evict
            elif seq > sub.last_seq:
                # The broker delivers each topic's events in seq order with no gap; a
                # hole here means events were lost upstream: close so the client resyncs.
                self.close(CloseCode.INTERNAL_ERROR, "lost events; resync")
            return  # else an old or repeated seq: already sent, or in the snapshot
        if self.reserve(frame.size) or self._remeasured(self.reserve, frame.size):
            if sub.held is _NONE_HELD:
                sub.held = [(seq, frame)]
            else:
                sub.held.append((seq, frame))
        else:
            self.evict()

    def go_live(self, sub: Subscription, epoch: int, seq: int, snapshot: Frame) -> bool:
        """Send `sub`'s snapshot (reflecting events up to `seq`), then the held events
        after it. False if the snapshot is stale (re-subscribed or unsubscribed since)."""
        if sub.epoch != epoch or sub.live or self.subscriptions.get(sub.topic) is not sub:
            return False
        held = sub.held
        self._release(sub)
        if self.close_code is not None:
            return False
        sub.live, sub.last_seq = True, seq
        self.send(snapshot)
        for event_seq, frame in held:
            self.deliver(sub, event_seq, frame)
        return True

    def held_frames(self) -> Iterator[Frame]:
        """The frames this client holds: its outbox, then the events held for its
        snapshots. Objects shared with other clients (`metrics.sample_queued` counts
        each once)."""
        yield from self.frames
        for sub in self.subscriptions.values():
            for _seq, frame in sub.held:
                yield frame

    def _remeasured(self, retry: Callable[[_T], bool], arg: _T) -> bool:
        """After an overflow: refresh what is in flight downstream and try once more."""
        self.set_downstream(self.io.in_flight())
        return retry(arg)

    def _release(self, sub: Subscription) -> None:
        if sub.held:
            self.unreserve(sum(frame.size for _, frame in sub.held))
            sub.held = _NONE_HELD
