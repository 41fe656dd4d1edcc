"""One dependency's readiness probe, shared: `/readyz` may be polled often (several
load balancers, each every few seconds or faster), and a probe of a database that
does not answer takes its whole timeout. So a dependency is probed at most once at a
time; callers that arrive while a probe runs share its outcome, and the outcome is
known within the probe's timeout of its start, whatever the check does."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

#: How long a probe may take before its dependency counts as not answering.
PROBE_TIMEOUT_S = 2.0


class SharedProbe:
    """Runs `check` (returns when the dependency answers, raises when it does not) at
    most once at a time, each run bounded by `timeout_s`.

    While the dependency answered at the last probe, a caller waits for the probe in
    flight (a new one if none is): a dependency that stalls is reported within
    `timeout_s`. Once a probe has failed, callers are answered at once - failing -
    while the next probe finds out whether it still is: a poll during an outage costs
    no wait, and the first probe that succeeds makes the next poll ready again. A
    check that does not end at its timeout (cancelled, but slow to unwind) stays the
    one in flight: probes never pile up behind a stalled dependency."""

    def __init__(self, name: str, check: Callable[[], Awaitable[None]], timeout_s: float = PROBE_TIMEOUT_S):
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        self.name = name
        self._check = check
        self._timeout_s = timeout_s
        self._task: asyncio.Task[bool] | None = None
        self._deadline = 0.0
        self._answered = True  # at the last probe

    @property
    def running(self) -> bool:
        """Whether a check is in flight (or still unwinding after its timeout)."""
        return self._task is not None and not self._task.done()

    async def ok(self) -> bool:
        """Whether the dependency answers (see the class docstring for when)."""
        loop = asyncio.get_running_loop()
        task = self._task
        if task is None or task.done():
            task = self._task = loop.create_task(self._run(), name=f"probe-{self.name}")
            self._deadline = loop.time() + self._timeout_s
        if not self._answered:
            return False
        remaining = self._deadline - loop.time()
        if remaining > 0:
            await asyncio.wait((task,), timeout=remaining)  # never cancels the shared task
        if task.done():
            return not task.cancelled() and task.result()
        # Past its deadline and still unwinding (its own timeout cancelled it): failed.
        self._note(False, f"no answer within {self._timeout_s:g} s")
        return False

    async def close(self) -> None:
        """Cancel a check in flight (the app is stopping); waits for it within the timeout."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait((task,), timeout=self._timeout_s)

    async def _run(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout_s):
                await self._check()
        except TimeoutError:
            self._note(False, f"no answer within {self._timeout_s:g} s")
            return False
        except Exception as exc:
            self._note(False, repr(exc))
            return False
        self._note(True, "")
        return True

    def _note(self, answered: bool, why: str) -> None:
        if answered != self._answered:
            self._answered = answered
            if answered:
                log.info("readiness: %s answers again", self.name)
            else:
                log.warning("readiness: %s does not answer: %s", self.name, why)
