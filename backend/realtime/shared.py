"""One outcome that many subscribes wait for, each wait costing one future.

After a deploy thousands of subscribes can wait for the same thing at once: the
snapshot build of one topic version (`Hub._snapshot`), the broker's watch of one topic
(`Hub._watch`). A waiter must be able to leave (its connection closed) without ending
the outcome for the others, which is what ``asyncio.shield`` gives - but per await it
makes a future, two closures with their cells, two callback entries and two context
copies. Held by every waiter of a storm (5,000 at once while a query runs), those
objects survive into CPython's oldest generation and make its full collections more
frequent and longer: that alone was most of the difference in CPU between a storm whose
provider is a database query and one served from memory (docs/benchmarks.md).

`Shared` gives each waiter one plain future instead, completed from one place when the
outcome is known; a waiter that was cancelled is skipped. The outcome is kept, so
a later `wait` after it is known answers at once (`done`, `result`: no future at all).
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


class Shared(Generic[T]):
    __slots__ = ("_error", "_result", "_state", "_waiters")

    _PENDING, _RESULT, _ERROR = 0, 1, 2

    def __init__(self) -> None:
        self._state = Shared._PENDING
        self._result: T | None = None
        self._error: BaseException | None = None
        self._waiters: list[asyncio.Future[T]] = []

    def done(self) -> bool:
        return self._state != Shared._PENDING

    def result(self) -> T:
        """The outcome (raises its error); only once `done`."""
        if self._state == Shared._RESULT:
            return self._result  # type: ignore[return-value]
        if self._state == Shared._ERROR:
            assert self._error is not None
            raise self._error
        raise asyncio.InvalidStateError("the outcome is not known yet")

    def wait(self) -> asyncio.Future[T]:
        """A future of the outcome for one waiter: cancelling it (the waiter's task was
        cancelled) leaves the outcome and the other waiters alone."""
        waiter: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        if self._state == Shared._PENDING:
            self._waiters.append(waiter)
        elif self._state == Shared._RESULT:
            waiter.set_result(self._result)  # type: ignore[arg-type]
        else:
            assert self._error is not None
            waiter.set_exception(self._error)
        return waiter

    def set_result(self, value: T) -> None:
        if self._state != Shared._PENDING:
            raise asyncio.InvalidStateError("the outcome is already known")
        self._state, self._result = Shared._RESULT, value
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(value)

    def set_exception(self, error: BaseException) -> None:
        """The outcome is an error: every waiter gets it. A cancellation cancels the
        waiters (as a cancelled shielded task cancels its outer futures)."""
        if self._state != Shared._PENDING:
            raise asyncio.InvalidStateError("the outcome is already known")
        self._state, self._error = Shared._ERROR, error
        waiters, self._waiters = self._waiters, []
        cancelled = isinstance(error, asyncio.CancelledError)
        for waiter in waiters:
            if waiter.done():
                continue
            if cancelled:
                waiter.cancel()
            else:
                waiter.set_exception(error)
