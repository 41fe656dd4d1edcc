"""Coalescing streamed text so that a token stream does not become a frame per token.

Streamed text is appended to the store at once (`SessionService.stream_text`); what
is published is decided later: within `window_s` of a message's first unpublished
append, one `TextDelta` carries all of its text not yet published. The store keeps
how much of each message has been published, so the delta comes from the store, not
from this process's memory: its offset is where the published text ends, and its text
runs to the current end, whichever node appended which part (a stream that moves
between nodes stays contiguous and in order; a node's late flush finds nothing left).

A snapshot may run ahead of the published deltas; the offset makes a delta
idempotent (see `models.TextDelta`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: (session_id, message_id)
Key = tuple[str, str]
#: Publishes the message's unpublished text, if any: (session_id, message_id).
Flush = Callable[[str, str], Awaitable[None]]


class TextCoalescer:
    def __init__(self, flush: Flush, window_s: float = 0.05) -> None:
        self._flush = flush
        self.window_s = window_s
        #: Messages with text appended here and not yet flushed.
        self._pending: set[Key] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, key: Key) -> None:
        """Text was appended to `key`'s message: flush it within the window."""
        if key not in self._pending:
            self._pending.add(key)
            asyncio.get_running_loop().call_later(self.window_s, self._spawn_flush, key)

    async def flush(self, key: Key) -> None:
        """Publish what is pending for `key` now (before the message ends)."""
        if key in self._pending:
            self._pending.discard(key)
            await self._flush(*key)

    def drop(self, session_id: str) -> None:
        self._pending -= {k for k in self._pending if k[0] == session_id}

    async def close(self) -> None:
        for key in list(self._pending):
            await self.flush(key)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn_flush(self, key: Key) -> None:
        task = asyncio.create_task(self._flush_logged(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush_logged(self, key: Key) -> None:
        try:
            await self.flush(key)
        except Exception:  # the text stays unpublished in the store; `end` carries it all
            log.exception("publishing the streamed text of %s failed", key)
