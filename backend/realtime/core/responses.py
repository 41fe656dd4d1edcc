"""Responses held until the events their call published have been routed here.

The promise (docs/protocol.md, "Requests"): a `response` comes after every event its
method published on a topic the connection is live on. With a network broker the
events come back to this node after `publish` returned, so the response must wait
for them - and only for those the client is owed: topics it is live on whose seq it
has not reached yet (`owed`). Not for topics it is still subscribing to (their
snapshot reflects the change anyway) or has left.

`Holds` keeps the waiting responses per topic, with opaque waiters (the hub's
futures): the fan-out reports each run's last seq (`reached`), and a topic the node
loses or stops routing releases all of its waiters (`release`) - an event that never
comes is the broker's `lost`, which closes the topic's subscribers anyway.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Generic, TypeVar

from .client import ClientState

W = TypeVar("W")


def owed(state: ClientState, published: Mapping[str, int]) -> dict[str, int]:
    """Of what a call published (topic → its highest seq), what the connection is
    owed before the call's response: the topics it is live on and has not reached."""
    if state.closing:
        return {}
    subs = state.subscriptions
    owed = {}
    for topic, seq in published.items():
        sub = subs.get(topic)
        if sub is not None and sub.live and sub.last_seq < seq:
            owed[topic] = seq
    return owed


class Holds(Generic[W]):
    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        #: Topic → (the seq awaited, its waiter), for the topics something waits on.
        self._waiting: dict[str, list[tuple[int, W]]] = {}

    def __bool__(self) -> bool:
        return bool(self._waiting)

    def add(self, topic: str, seq: int, waiter: W) -> None:
        self._waiting.setdefault(topic, []).append((seq, waiter))

    def discard(self, topic: str, waiter: W) -> None:
        """`waiter` no longer waits (it gave up at its deadline)."""
        waiting = self._waiting.get(topic)
        if waiting is not None:
            waiting[:] = [(s, w) for s, w in waiting if w is not waiter]
            if not waiting:
                del self._waiting[topic]

    def reached(self, topic: str, seq: int) -> list[W]:
        """The fan-out routed `topic` up to `seq`: the waiters that may go."""
        waiting = self._waiting.get(topic)
        if waiting is None:
            return []
        ready = [w for s, w in waiting if s <= seq]
        if ready:
            rest = [(s, w) for s, w in waiting if s > seq]
            if rest:
                self._waiting[topic] = rest
            else:
                del self._waiting[topic]
        return ready

    def release(self, topic: str) -> list[W]:
        """Nothing more of `topic` will be routed here to order against (its last local
        subscriber left, or the broker lost it): every waiter of it may go."""
        return [w for _s, w in self._waiting.pop(topic, [])]
