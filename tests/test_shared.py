"""`shared.Shared`: one outcome, many waiters, each a plain future that may leave alone."""

from __future__ import annotations

import asyncio
import gc

import pytest

from aiohttp_realtime.shared import Shared


async def test_every_waiter_gets_the_result_and_one_that_leaves_ends_nothing_for_the_others():
    shared: Shared[str] = Shared()
    waiters = [asyncio.ensure_future(shared.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[1].cancel()  # its connection closed while the snapshot was built
    await asyncio.sleep(0)
    assert not shared.done() and not waiters[0].done() and not waiters[2].done()
    shared.set_result("frame")
    assert [await waiters[0], await waiters[2]] == ["frame", "frame"]
    assert waiters[1].cancelled()
    assert shared.done() and shared.result() == "frame"
    late = shared.wait()  # after the outcome: answered at once
    assert late.done() and late.result() == "frame"


async def test_a_failure_is_every_waiters_and_a_later_waiters():
    shared: Shared[str] = Shared()
    waiters = [shared.wait() for _ in range(2)]
    error = RuntimeError("the provider failed")
    shared.set_exception(error)
    for waiter in [*waiters, shared.wait()]:
        with pytest.raises(RuntimeError) as raised:
            await waiter
        assert raised.value is error
    with pytest.raises(RuntimeError):
        shared.result()


async def test_a_cancelled_outcome_cancels_the_waiters():
    shared: Shared[None] = Shared()
    waiter = shared.wait()
    shared.set_exception(asyncio.CancelledError())
    assert waiter.cancelled()


async def test_the_outcome_is_set_once_and_read_only_when_known():
    shared: Shared[int] = Shared()
    with pytest.raises(asyncio.InvalidStateError):
        shared.result()
    shared.set_result(1)
    with pytest.raises(asyncio.InvalidStateError):
        shared.set_result(2)
    with pytest.raises(asyncio.InvalidStateError):
        shared.set_exception(RuntimeError())


async def test_a_waiter_costs_one_future_not_a_shield():
    """What the shared snapshot build is for: in a storm thousands of subscribes wait at
    once, and every object a waiter holds survives into the oldest GC generation. A
    waiter here is one future (asyncio.shield makes a future, two closures and their
    cells, two context copies and two callback entries per await)."""

    def tracked_per_waiter(wait: object) -> float:
        n = 1_000
        gc.collect()
        before = len(gc.get_objects())
        held = [wait() for _ in range(n)]  # type: ignore[operator]
        gc.collect()
        per = (len(gc.get_objects()) - before) / n
        del held
        return per

    shared: Shared[int] = Shared()
    inner: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    def shielded() -> asyncio.Future[int]:
        return asyncio.shield(inner)

    assert tracked_per_waiter(shared.wait) <= 1.01
    assert tracked_per_waiter(shielded) >= 5  # the cost this replaces (11 on CPython 3.11)
