"""One connection's outbound frames between two writes, bounded in bytes.

The budget counts every byte a slow client makes the server hold: frames waiting
here (`pending`), frames held for subscriptions whose snapshot is being built
(`reserved`), and `downstream`, what the writer reported still in flight at its
last write (the transport's buffer plus the kernel's send queue). So `limit`
bounds the memory a client that stopped reading can pin, not only this object.

`room` is `limit` minus all three, kept up to date on every change so that the
per-subscriber hot path is one comparison. Plain data and arithmetic: appending never
awaits and never touches a socket; the writer drains it once per loop tick, as one
write (`written`).

The invariant `room == limit - pending - reserved - downstream` is kept by this
class's methods alone, with one exception: `Router._deliver` (the fan-out of a run to
a live subscriber: once per subscriber per run, the hottest line of the library)
inlines `extend`, because a call there cost a third of a burst. Its copy is checked by
tests/test_core.py's budget tests, which go through both paths.
"""

from __future__ import annotations

from ..frames import Frame


class Outbox:
    __slots__ = ("downstream", "frames", "limit", "pending", "reserved", "room")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        #: Frames waiting for the next write, in order. Appended to directly by
        #: `ClientState.send` (the hot path), which keeps `pending` and `room` too.
        self.frames: list[Frame] = []
        self.pending = 0
        #: Bytes held elsewhere for this client (events buffered during a snapshot).
        self.reserved = 0
        #: Bytes in flight below the writer at its last write (transport + kernel).
        self.downstream = 0
        self.room = limit

    @property
    def cost(self) -> int:
        """Every byte this client holds in the server right now, as far as known."""
        return self.limit - self.room

    def push(self, frame: Frame) -> bool:
        """Append an encoded frame. False (and nothing appended) if it would overflow."""
        if frame.size > self.room:
            return False
        self.frames.append(frame)
        self.pending += frame.size
        self.room -= frame.size
        return True

    def extend(self, frames: list[Frame], size: int) -> bool:
        """Append a run of frames of `size` bytes in all. False (nothing appended) if they
        would overflow. (Inlined in `Router._deliver`.)"""
        if size > self.room:
            return False
        self.frames.extend(frames)
        self.pending += size
        self.room -= size
        return True

    def reserve(self, size: int) -> bool:
        if size > self.room:
            return False
        self.reserved += size
        self.room -= size
        return True

    def unreserve(self, size: int) -> None:
        self.reserved -= size
        self.room += size

    def set_downstream(self, size: int) -> None:
        self.room += self.downstream - size
        self.downstream = size

    def take(self) -> list[Frame]:
        """Everything pending, in order; the outbox is empty afterwards."""
        frames, self.frames = self.frames, []
        self.room += self.pending
        self.pending = 0
        return frames

    def written(self, in_flight: int) -> None:
        """The frames taken out (`frames` already emptied by the writer) were written;
        `in_flight` is what the writer reports still below it. One step instead of
        `take` plus `set_downstream`, once per connection per tick."""
        self.room += self.pending + self.downstream - in_flight
        self.pending, self.downstream = 0, in_flight

    def discard(self) -> None:
        """Drop the queued frames (an evicted client): frees them at once. Reservations
        belong to the subscriptions holding the events; they release them."""
        self.take()
