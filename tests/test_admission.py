"""`admission.Admission`: a bound on holders, a fair line, and a line that survives
waiters giving up."""

from __future__ import annotations

import asyncio

import pytest

from aiohttp_realtime.admission import Admission


async def test_holders_are_bounded_and_waiters_admitted_in_arrival_order():
    gate = Admission(2)
    order: list[int] = []
    go = asyncio.Event()

    async def build(i: int) -> None:
        await gate.acquire()
        order.append(i)
        try:
            await go.wait()
        finally:
            gate.release()

    tasks = []
    for i in range(6):
        tasks.append(asyncio.create_task(build(i)))
        await asyncio.sleep(0)  # each reaches the gate before the next starts
    assert (order, gate.active, gate.waiting) == ([0, 1], 2, 4)
    go.set()
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4, 5]
    assert (gate.active, gate.waiting, gate.free) == (0, 0, True)


async def test_a_newcomer_does_not_overtake_the_line():
    gate = Admission(1)
    await gate.acquire()
    first = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    gate.release()  # handed to `first`, which has not run yet
    assert not gate.free  # a newcomer arriving now must wait behind it
    await first
    assert gate.active == 1
    gate.release()


async def test_a_waiter_that_gives_up_leaves_the_line_and_a_handed_slot_passes_on():
    gate = Admission(1)
    await gate.acquire()
    quitter = asyncio.create_task(gate.acquire())
    handed = asyncio.create_task(gate.acquire())
    last = asyncio.create_task(gate.acquire())
    await asyncio.sleep(0)
    quitter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert gate.waiting == 2
    gate.release()  # to `handed`...
    handed.cancel()  # ...which gives up before it ran: the slot goes to `last`
    with pytest.raises(asyncio.CancelledError):
        await handed
    await asyncio.wait_for(last, 1)
    assert (gate.active, gate.waiting) == (1, 0)
    gate.release()
    assert (gate.active, gate.free) == (0, True)


def test_a_limit_below_one_is_refused():
    with pytest.raises(ValueError, match="at least 1"):
        Admission(0)
