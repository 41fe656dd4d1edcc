"""Coalescing streamed text so that a token stream does not become a frame per token.

Deltas of one message added within `window_s` of its first pending delta are
published as one `TextDelta` carrying the offset of the first. The store already
holds the full text, so a snapshot may run ahead of the published deltas; the
offset makes a delta idempotent (see `models.TextDelta`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

#: (session_id, message_id)
Key = tuple[str, str]
Flush = Callable[[str, str, int, str], Awaitable[None]]


class TextCoalescer:
    def __init__(self, flush: Flush, window_s: float = 0.05) -> None:
        self._flush = flush
        self._window_s = window_s
        self._pending: dict[Key, tuple[int, list[str]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, key: Key, offset: int, text: str) -> None:
        pending = self._pending.get(key)
        if pending is not None:
            pending[1].append(text)
            return
        self._pending[key] = (offset, [text])
        asyncio.get_running_loop().call_later(self._window_s, self._spawn_flush, key)

    async def flush(self, key: Key) -> None:
        """Publish what is pending for `key` now (before the message ends)."""
        pending = self._pending.pop(key, None)
        if pending is not None:
            offset, parts = pending
            await self._flush(key[0], key[1], offset, "".join(parts))

    def drop(self, session_id: str) -> None:
        for key in [k for k in self._pending if k[0] == session_id]:
            del self._pending[key]

    async def close(self) -> None:
        for key in list(self._pending):
            await self.flush(key)
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn_flush(self, key: Key) -> None:
        task = asyncio.create_task(self.flush(key))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
