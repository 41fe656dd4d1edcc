"""A token bucket without a clock of its own: the caller passes the time, so the
limiter is I/O-free and unit-tested without sleeping."""

from __future__ import annotations


class TokenBucket:
    """`burst` tokens at most, refilled at `rate` per second; `take(n, now)` spends n."""

    __slots__ = ("_at", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._at = now

    def take(self, n: int, now: float) -> bool:
        """Spend `n` tokens if there are that many (after refilling up to `now`)."""
        if now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
        if n <= self._tokens:
            self._tokens -= n
            return True
        return False


class Strikes:
    """Consecutive refusals: `limit` of them in a row (no accepted message between)
    means the client ignores `rate_limited` and should be closed."""

    __slots__ = ("count", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0

    def refused(self) -> bool:
        """Count a refusal; True once the streak reaches the limit."""
        self.count += 1
        return self.count >= self.limit

    def accepted(self) -> None:
        self.count = 0
