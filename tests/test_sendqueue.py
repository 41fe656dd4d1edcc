from __future__ import annotations

import asyncio

from aiohttp_realtime.sendqueue import SendQueue


async def test_bounded_by_bytes_not_frames():
    q = SendQueue(limit=10)
    assert q.push(b"12345")
    assert q.push(b"1234")
    assert not q.push(b"12")  # 11 > 10: refused, nothing queued
    assert q.buffered_bytes == 9 and len(q) == 2
    assert q.push(b"1")
    assert await q.pop() == b"12345"
    assert q.buffered_bytes == 5


async def test_reserved_bytes_count_against_the_limit():
    q = SendQueue(limit=10)
    assert q.reserve(8)
    assert not q.push(b"123")
    assert not q.reserve(3)
    q.unreserve(8)
    assert q.push(b"123")


async def test_pop_waits_for_a_frame_and_ends_after_close():
    q = SendQueue(limit=100)
    waiter = asyncio.create_task(q.pop())
    await asyncio.sleep(0)
    assert not waiter.done()
    q.push(b"x")
    assert await waiter == b"x"
    q.push(b"y")
    q.close()
    assert not q.push(b"z")
    assert await q.pop() == b"y"  # a graceful close still drains
    assert await q.pop() is None


async def test_close_with_discard_frees_everything():
    q = SendQueue(limit=100)
    q.push(b"abc")
    q.reserve(10)
    q.close(discard=True)
    assert (q.buffered_bytes, q.reserved, len(q)) == (0, 0, 0)
    assert await q.pop() is None
