"""Admission: at most `limit` snapshot builds in flight per process, the rest in line.

In a reconnect storm every tab resubscribes at once. Sharing (`core.snapshots`)
makes the subscribers of one topic version one build, but a storm of many topics
(each tab's own activity stream, a snapshot per principal) is still thousands of
builds. Started all at once they would open thousands of database queries, and a
synchronous provider's builds, all ready in one loop iteration, would run back to
back before the loop polls a socket again - live clients' events would wait for the
whole storm. Admitted a few at a time, the builds interleave with everything else
the loop does, and a storm costs its builds' time, spread out.

Fair: waiters are admitted in arrival order (a deque of futures; a slot is handed
from the releasing build to the first waiter directly, so no newcomer overtakes).
A waiter that gives up (its deadline, its cancellation) leaves the line; one that
was handed a slot as it gave up passes the slot on.
"""

from __future__ import annotations

import asyncio
from collections import deque


class Admission:
    __slots__ = ("_active", "_limit", "_waiting")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("an admission limit must be at least 1")
        self._limit = limit
        self._active = 0
        self._waiting: deque[asyncio.Future[None]] = deque()

    @property
    def active(self) -> int:
        """Holders of a slot now."""
        return self._active

    @property
    def waiting(self) -> int:
        """Callers in line for a slot."""
        return len(self._waiting)

    @property
    def free(self) -> bool:
        """Whether `acquire` would not wait."""
        return self._active < self._limit and not self._waiting

    async def acquire(self) -> None:
        """Until this caller holds a slot (the caller must `release` it)."""
        if self.free:
            self._active += 1
            return
        turn = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            await turn
        except BaseException:
            if turn.done() and not turn.cancelled():
                self.release()  # handed a slot as it gave up: the next in line gets it
            else:
                self._waiting.remove(turn)
            raise

    def release(self) -> None:
        """Give the slot to the first in line, or free it."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)  # the slot passes over: `_active` is unchanged
                return
        self._active -= 1
