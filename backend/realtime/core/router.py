"""Topic → subscriptions: where a published event goes.

`route` is the per-event hot path: one dictionary lookup, then one append per
subscriber (`ClientState.deliver`'s common case, inlined). Nothing here writes, awaits or allocates per
subscriber beyond that; the writes happen later, once per connection per tick.
"""

from __future__ import annotations

from ..frames import Frame, event_frame
from .client import Subscription


class Router:
    __slots__ = ("_subscribers",)

    def __init__(self) -> None:
        self._subscribers: dict[str, set[Subscription]] = {}

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

    def route(self, topic: str, seq: int, payload: bytes) -> int:
        """Deliver an event (its payload already serialised) to every subscriber of
        `topic`: the frame is built once and shared. Returns the subscriber count, so
        that metrics count frames once per event, not once per subscriber."""
        subs = self._subscribers.get(topic)
        if not subs:
            return 0
        frame = Frame(event_frame(topic, seq, payload))
        size = frame.size
        for sub in subs:
            client = sub.client
            # `ClientState.deliver`'s common case, inlined (a call per subscriber per
            # event was a third of a burst's cost): the next seq of a live
            # subscription that fits its budget. Anything else - held, a gap, over
            # budget, closing - goes to `deliver`, with nothing changed yet.
            if sub.live and seq == sub.last_seq + 1 and client.close_code is None:
                outbox = client.outbox
                if size <= outbox.room:
                    sub.last_seq = seq
                    frames = outbox.frames
                    if not frames:
                        client.io.ready(client)
                    frames.append(frame)
                    outbox.pending += size
                    outbox.room -= size
                    continue
            client.deliver(sub, seq, frame)
        return len(subs)
