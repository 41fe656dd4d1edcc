"""A node's interest in backplane channels, and the SUBSCRIBE/UNSUBSCRIBE that keep it.

The broker asks for a channel when the topic's first local subscriber arrives (`want`)
and gives it up after the last one leaves (`drop`). Both can happen in the same moment
- a UI leaving a session and coming back - and the backplane's answer to the first
command arrives after the second was asked for. The rule that makes that harmless:

    every command is decided here, in the order the asks came, and sent on the one
    subscription connection in that order; the backplane applies one connection's
    commands in order and answers each (Redis: one `subscribe`/`unsubscribe` reply
    per channel per command, in order).

So the backplane's state after the commands sent so far is the last command's, and
that is always the node's wish: a `want` after a `drop` sends SUBSCRIBE after the
UNSUBSCRIBE, never before it (the bug this replaces: an UNSUBSCRIBE sent from a task
of its own reached Redis after a newer SUBSCRIBE, and the node stayed deaf). A
`want` is ready when the answer to *its* SUBSCRIBE (or to the one it joined) comes
back - not an older one's - so "from when `watch` returns, every event is delivered"
holds however the asks interleave.

Waiters are opaque here (the broker's futures): nothing in this module awaits. A
lost connection (`reset`) forgets everything the backplane knew; the caller resyncs
the channels that were wanted.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

W = TypeVar("W")
Kind = Literal["subscribe", "unsubscribe"]


@dataclass(slots=True)
class _Sent(Generic[W]):
    kind: Kind
    #: The `want`s that are ready when this command's answer arrives (SUBSCRIBE only).
    waiters: list[W] = field(default_factory=list)


@dataclass(slots=True)
class _Channel(Generic[W]):
    wanted: bool = False
    #: The backplane's state after every answered command.
    subscribed: bool = False
    #: Commands sent and not yet answered, oldest first.
    pending: deque[_Sent[W]] = field(default_factory=deque)

    @property
    def heading_for(self) -> bool:
        """Subscribed once every sent command is answered."""
        return self.pending[-1].kind == "subscribe" if self.pending else self.subscribed


class OutOfOrder(Exception):
    """The backplane answered a command that was not the next one sent: the connection
    cannot be trusted any more (the caller drops it and resyncs)."""


class ChannelInterest(Generic[W]):
    __slots__ = ("_channels",)

    def __init__(self) -> None:
        self._channels: dict[str, _Channel[W]] = {}

    def want(self, channel: str, waiter: W) -> tuple[Kind | None, bool]:
        """The node needs `channel`. Returns (the command to send now, or None; whether
        `waiter` is ready already). Not ready: `waiter` comes back from `answered`
        with the answer to the SUBSCRIBE that makes the channel subscribed."""
        state = self._channels.get(channel)
        if state is None:
            state = self._channels[channel] = _Channel()
        state.wanted = True
        if state.heading_for:
            if not state.pending:
                return None, True
            state.pending[-1].waiters.append(waiter)  # join the SUBSCRIBE in flight
            return None, False
        state.pending.append(_Sent("subscribe", [waiter]))
        return "subscribe", False

    def drop(self, channel: str) -> Kind | None:
        """The node no longer needs `channel`: the command to send now, or None. A
        SUBSCRIBE still in flight is followed by this UNSUBSCRIBE, in order; its
        waiters are still answered when its answer comes."""
        state = self._channels.get(channel)
        if state is None or not state.wanted:
            return None
        state.wanted = False
        if not state.heading_for:
            return None
        state.pending.append(_Sent("unsubscribe"))
        return "unsubscribe"

    def answered(self, channel: str, kind: Kind) -> list[W]:
        """The backplane's answer to the oldest pending command of `channel`. Returns
        the waiters it makes ready. Raises `OutOfOrder` for an answer nobody asked for."""
        state = self._channels.get(channel)
        if state is None or not state.pending or state.pending[0].kind != kind:
            raise OutOfOrder(f"unexpected {kind} of {channel!r}")
        sent = state.pending.popleft()
        state.subscribed = kind == "subscribe"
        if not state.wanted and not state.pending and not state.subscribed:
            del self._channels[channel]  # bounded by the channels in use
        return sent.waiters

    def reset(self) -> tuple[list[str], list[W]]:
        """The subscription connection is gone, and with it everything the backplane
        knew. Returns the channels that were wanted (their events may be lost: resync
        them) and every waiter still waiting (to be failed). Nothing is wanted after."""
        wanted = [name for name, state in self._channels.items() if state.wanted]
        waiters = [w for state in self._channels.values() for sent in state.pending for w in sent.waiters]
        self._channels.clear()
        return wanted, waiters

    def topics(self) -> list[str]:
        """The channels wanted now."""
        return [name for name, state in self._channels.items() if state.wanted]

    def wanted(self, channel: str) -> bool:
        state = self._channels.get(channel)
        return state is not None and state.wanted

    def ready(self, channel: str) -> bool:
        """Wanted, and the backplane has confirmed it with nothing in flight."""
        state = self._channels.get(channel)
        return state is not None and state.wanted and state.subscribed and not state.pending

    def __len__(self) -> int:
        """Channels wanted now."""
        return sum(1 for state in self._channels.values() if state.wanted)
