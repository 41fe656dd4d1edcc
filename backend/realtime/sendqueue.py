"""A per-connection outbound queue bounded in bytes.

Bounded by bytes, not frames: one 64 KiB message and one 60-byte pong are not
the same burden. `push` is a plain function so that publishing never awaits a
client; it reports overflow and the caller evicts. Only the connection's writer
task awaits (`pop`), and only it touches the socket.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, Protocol, TypeVar


class _Sized(Protocol):
    def __len__(self) -> int: ...


T = TypeVar("T", bound=_Sized)


class SendQueue(Generic[T]):
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._frames: deque[T] = deque()
        self._bytes = 0
        self._reserved = 0
        self._ready = asyncio.Event()
        self._closed = False
        self._popping = False

    @property
    def buffered_bytes(self) -> int:
        return self._bytes

    @property
    def idle(self) -> bool:
        """Empty, and its consumer is waiting in `pop`: nothing is queued or in
        flight ahead of a frame written now by other means."""
        return self._popping and not self._frames

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def reserved(self) -> int:
        return self._reserved

    def __len__(self) -> int:
        return len(self._frames)

    def fits(self, extra: int) -> bool:
        return self._bytes + self._reserved + extra <= self.limit

    def reserve(self, size: int) -> bool:
        """Count bytes held elsewhere for this client (events buffered while a
        snapshot is built) against the same limit. False if they don't fit."""
        if self._closed or not self.fits(size):
            return False
        self._reserved += size
        return True

    def unreserve(self, size: int) -> None:
        self._reserved -= size

    def push(self, frame: T) -> bool:
        """Queue a frame. False if it would overflow the limit (nothing is queued)
        or the queue is closed; the caller must then evict the connection."""
        if self._closed or not self.fits(len(frame)):
            return False
        self._frames.append(frame)
        self._bytes += len(frame)
        self._ready.set()
        return True

    async def pop(self) -> T | None:
        """The next frame, waiting for one; None once the queue is closed and empty."""
        while not self._frames:
            if self._closed:
                return None
            self._ready.clear()
            self._popping = True
            try:
                await self._ready.wait()
            finally:
                self._popping = False
        frame = self._frames.popleft()
        self._bytes -= len(frame)
        return frame

    def close(self, *, discard: bool = False) -> None:
        """No more pushes. With `discard`, drop what is queued (frees it at once)."""
        self._closed = True
        if discard:
            self._frames.clear()
            self._bytes = 0
            self._reserved = 0
        self._reserved = 0
        self._ready.set()
