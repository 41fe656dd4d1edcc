"""One connection's outbound frames between two writes, bounded in bytes.

The budget counts every byte a slow client makes the server hold: frames waiting
here, frames held for subscriptions whose snapshot is being built (`reserve`), and
`downstream`, what the writer reported still in flight at its last write (the
transport's buffer plus the kernel's send queue). So `limit` bounds the memory a
client that stopped reading can pin, not only the part in this object.

Plain data and arithmetic: appending never awaits and never touches a socket; the
writer drains it with `take` once per loop tick, as one write.
"""

from __future__ import annotations

from ..frames import Frame


class Outbox:
    __slots__ = ("_frames", "downstream", "limit", "pending", "reserved")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._frames: list[Frame] = []
        #: Bytes of `_frames`.
        self.pending = 0
        #: Bytes held elsewhere for this client (events buffered during a snapshot).
        self.reserved = 0
        #: Bytes in flight below the writer at its last write (transport + kernel).
        self.downstream = 0

    @property
    def cost(self) -> int:
        """Every byte this client holds in the server right now, as far as known."""
        return self.pending + self.reserved + self.downstream

    def fits(self, size: int) -> bool:
        return self.cost + size <= self.limit

    def push(self, frame: Frame) -> bool:
        """Append an encoded frame. False (and nothing appended) if it would overflow."""
        size = len(frame)
        if self.cost + size > self.limit:
            return False
        self._frames.append(frame)
        self.pending += size
        return True

    def reserve(self, size: int) -> bool:
        if not self.fits(size):
            return False
        self.reserved += size
        return True

    def unreserve(self, size: int) -> None:
        self.reserved -= size

    def __bool__(self) -> bool:
        return bool(self._frames)

    def take(self) -> list[Frame]:
        """Everything pending, in order; the outbox is empty afterwards."""
        frames, self._frames = self._frames, []
        self.pending = 0
        return frames

    def discard(self) -> None:
        """Drop the queued frames (an evicted client): frees them at once. Reservations
        belong to the subscriptions holding the events; they release them."""
        self._frames = []
        self.pending = 0
