"""Readiness probes: bounded, one in flight per dependency, shared by the callers that
arrive meanwhile - however often `/readyz` is polled and however a check hangs."""

from __future__ import annotations

import asyncio

from backend.app import Config, build_app
from backend.memory_store import MemoryStore
from backend.probes import PROBE_TIMEOUT_S, SharedProbe
from backend.store import StoreUnavailable
from tests.support import until


class Check:
    """A check that waits until answered; once cancelled, it unwinds only when released."""

    def __init__(self) -> None:
        self.runs = 0
        self.answer = asyncio.Event()
        self.release = asyncio.Event()
        self.fail = False
        self.running = 0

    async def __call__(self) -> None:
        self.runs += 1
        self.running += 1
        try:
            await self.answer.wait()
            if self.fail:
                raise StoreUnavailable("no")
        except asyncio.CancelledError:
            await self.release.wait()  # slow to unwind, as a stuck connection's cleanup is
            raise
        finally:
            self.running -= 1


async def test_callers_arriving_while_a_probe_runs_share_it():
    check = Check()
    probe = SharedProbe("db", check, timeout_s=5)
    callers = [asyncio.create_task(probe.ok()) for _ in range(20)]
    await until(lambda: check.runs == 1)
    check.answer.set()
    assert await asyncio.gather(*callers) == [True] * 20
    assert check.runs == 1
    check.fail = True  # the next caller starts a new probe
    assert await probe.ok() is False and check.runs == 2


async def test_a_probe_that_does_not_answer_fails_at_its_timeout_and_none_piles_up_behind_it():
    check = Check()
    probe = SharedProbe("db", check, timeout_s=0.2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await probe.ok() is False
    assert loop.time() - started < 0.2 + 0.3
    # It was cancelled but has not unwound yet: callers are told at once, no new check.
    assert probe.running and check.running == 1
    for _ in range(10):
        assert await asyncio.wait_for(probe.ok(), 0.05) is False
    assert check.runs == 1
    check.release.set()
    await until(lambda: not probe.running)
    check.answer.set()
    # Failing at the last probe: answered at once, while a new probe finds out...
    assert await asyncio.wait_for(probe.ok(), 0.05) is False
    await until(lambda: not probe.running)
    assert check.runs == 2
    assert await probe.ok() is True  # ... which the next caller hears


async def test_readyz_is_503_within_the_probe_timeout_with_one_probe_for_many_polls(aiohttp_client):
    check = Check()

    class Stalled(MemoryStore):
        async def check(self) -> None:
            await check()

    client = await aiohttp_client(build_app(Config(simulate=False), store=Stalled()))
    loop = asyncio.get_running_loop()
    started = loop.time()
    responses = await asyncio.gather(*(client.get("/readyz") for _ in range(25)))
    assert loop.time() - started < PROBE_TIMEOUT_S + 1
    for resp in responses:
        assert resp.status == 503
        assert await resp.json() == {
            "ready": False,
            "checks": {"broker": True, "store": False, "serving": True},
        }
    assert check.runs == 1
    check.release.set()
    check.answer.set()
    async with asyncio.timeout(5):
        while (await client.get("/readyz")).status != 200:  # noqa: ASYNC110 - each poll probes anew
            await asyncio.sleep(0.05)
