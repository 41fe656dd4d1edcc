"""A node's `/readyz` as a load balancer sees it: probed every `PERIOD_S` in the
background, each answer kept with its time (0: no answer within 2 s)."""

from __future__ import annotations

import asyncio
import contextlib
import time

from tests.chaos.deployment import Deployment
from tests.chaos.nodes import Node

PERIOD_S = 0.2


class Readiness:
    def __init__(self, deployment: Deployment, node: Node) -> None:
        self.deployment = deployment
        self.node = node
        self.samples: list[tuple[float, int]] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Readiness:
        self._task = asyncio.create_task(self._probe())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _probe(self) -> None:
        while True:
            started = time.monotonic()
            status = await self.deployment.readyz(self.node)
            self.samples.append((started, status))
            await asyncio.sleep(max(0.0, PERIOD_S - (time.monotonic() - started)))  # the probe period

    def first(self, status: int, *, after: float) -> float | None:
        """When `status` was first answered at or after `after`; None if never."""
        return next((t for t, s in self.samples if t >= after and s == status), None)

    def count(self, status: int, *, after: float, before: float = float("inf")) -> int:
        return sum(1 for t, s in self.samples if after <= t < before and s == status)

    def statuses(self, *, after: float, before: float = float("inf")) -> set[int]:
        return {s for t, s in self.samples if after <= t < before}

    async def wait_for(self, status: int, *, after: float, timeout: float) -> float | None:
        """Until a sample answered `status` (polled), or None after `timeout`."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                while (found := self.first(status, after=after)) is None:  # noqa: ASYNC110
                    await asyncio.sleep(PERIOD_S / 2)  # samples come from the probe task
                return found
        return None
