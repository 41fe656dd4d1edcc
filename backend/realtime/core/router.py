"""Topic → subscriptions: where a published event goes, and when.

Events are queued as they are published (`queue`: one append) and fanned out once
per loop tick (`fan_out`), in publish order. Consecutive events of one topic - a
burst - go out as one run: each subscriber of the topic is visited once per run,
not once per event, and given the run's frames with one `extend` when it is live,
owed exactly the run's first seq, and has room for all of it. Anything else (a
subscription still buffering, a gap, a duplicate, over budget, closing) takes the
per-event path, `ClientState.deliver`, with nothing changed yet. Events of
different topics keep their interleaving: a run ends where another topic's event
comes between.

Nothing here writes or awaits; the writes happen after the fan-out, once per
connection per tick (`writer.Flusher`). Deferring an event to the tick's fan-out is
what a network broker does anyway (it delivers after `publish` returns): the
ordering rules of `ClientState` cover it - an event fanned out after a snapshot
that already reflects it is dropped as old.
"""

from __future__ import annotations

from ..frames import Frame, event_frame
from .client import Subscription

#: One topic's consecutive events in a tick: the topic, then (seq, frame) in order.
Run = tuple[str, list[tuple[int, Frame]]]


class Router:
    __slots__ = ("_queued", "_subscribers")

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}
        #: Events published since the last fan-out: (topic, seq, serialised payload).
        self._queued: list[tuple[str, int, bytes]] = []

    def attach(self, sub: Subscription) -> bool:
        """Route `sub.topic`'s events to `sub`; True if it is the topic's first subscriber."""
        subs = self._subscribers.get(sub.topic)
        if subs is None:
            self._subscribers[sub.topic] = {sub}
            return True
        subs.add(sub)
        return False

    def detach(self, sub: Subscription) -> bool:
        """Stop routing to `sub`; True if the topic has no subscriber left."""
        subs = self._subscribers.get(sub.topic)
        if subs is None:
            return False
        subs.discard(sub)
        if subs:
            return False
        del self._subscribers[sub.topic]
        return True

    def pop(self, topic: str) -> set[Subscription]:
        """Stop routing `topic` at all; its subscriptions, for the caller to end."""
        return self._subscribers.pop(topic, set())

    def count(self, topic: str) -> int:
        return len(self._subscribers.get(topic, ()))

    def __len__(self) -> int:
        """Topics with at least one subscriber."""
        return len(self._subscribers)

    # ------------------------------------------------------------ events

    def queue(self, topic: str, seq: int, payload: bytes) -> bool:
        """Queue an event (its payload already serialised) for the next `fan_out`.
        True if it is the first since the last one: the caller schedules the fan-out."""
        queued = self._queued
        queued.append((topic, seq, payload))
        return len(queued) == 1

    def fan_out(self) -> list[tuple[str, int, int]]:
        """Deliver everything queued, in order, run by run. Per run: (topic, its last
        seq, frames delivered) - for metrics, and for whoever waits for a seq to be
        routed. Subscribers attached after an event was queued get it too (as a
        network broker's late delivery: their snapshot decides whether it is new)."""
        queued, self._queued = self._queued, []
        done = []
        i, end = 0, len(queued)
        while i < end:
            topic = queued[i][0]
            j = i + 1
            while j < end and queued[j][0] == topic:
                j += 1
            events = [(seq, Frame(event_frame(topic, seq, payload))) for _t, seq, payload in queued[i:j]]
            done.append((topic, events[-1][0], self._deliver(topic, events)))
            i = j
        return done

    def _deliver(self, topic: str, events: list[tuple[int, Frame]]) -> int:
        """One run of `topic`'s events to each of its subscribers: the frames are built
        once and shared. Returns the frames delivered (subscribers x events)."""
        subs = self._subscribers.get(topic)
        if not subs:
            return 0
        first, last = events[0][0], events[-1][0]
        frames = [frame for _seq, frame in events]
        size = sum(frame.size for frame in frames)
        # The run is one step for a subscriber only if its seqs have no gap.
        whole = last - first == len(events) - 1
        for sub in subs:
            client = sub.client
            # The common case: a live subscription owed exactly this run, with room -
            # `Outbox.extend` inlined (a call per subscriber here was a third of a
            # burst's cost; the budget's one copy outside `Outbox`).
            if whole and sub.live and sub.last_seq + 1 == first and client.close_code is None:
                if size <= client.room:  # the client is its outbox (`ClientState`)
                    sub.last_seq = last
                    if not client.frames:
                        client.io.ready(client)
                    client.frames.extend(frames)
                    client.pending += size
                    client.room -= size
                    continue
            for seq, frame in events:
                client.deliver(sub, seq, frame)
        return len(subs) * len(events)
