"""Token buckets without a clock of their own: the caller passes the time, so the
limiters are I/O-free and unit-tested without sleeping."""

from __future__ import annotations

from typing import Protocol


def _refilled(tokens: float, at: float, rate: float, burst: int, now: float) -> float:
    """A bucket's tokens at `now`: refilled at `rate` per second since `at`, up to `burst`."""
    return min(burst, tokens + (now - at) * rate) if now > at else tokens


def _spend_one(tokens: float, at: float, rate: float, burst: int, now: float) -> tuple[bool, float, float]:
    """A bucket's state after trying to spend one token at `now`: (spent, tokens, at)."""
    tokens = _refilled(tokens, at, rate, burst, now)
    ok = tokens >= 1
    return ok, tokens - 1 if ok else tokens, max(at, now)


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
        self._tokens = _refilled(self._tokens, self._at, self.rate, self.burst, now)
        self._at = max(self._at, now)
        if n <= self._tokens:
            self._tokens -= n
            return True
        return False


class Rates(Protocol):
    """The per-connection limits (`RealtimeSettings` has them)."""

    @property
    def frames_per_s(self) -> float: ...
    @property
    def frames_burst(self) -> int: ...
    @property
    def subscribes_per_s(self) -> float: ...
    @property
    def subscribes_burst(self) -> int: ...
    @property
    def auth_per_minute(self) -> int: ...


class ClientLimits:
    """One connection's rate limits: client frames per second, topics subscribed per
    second (two token buckets), and its strikes - refusals in a row, at most
    `frames_burst` before the client is closed. Flat in one object, the rates shared:
    as two `TokenBucket`s and a strike counter they were three objects per connection
    (memory per idle connection is a target, docs/benchmarks.md). The `auth` frames'
    bucket (`auth_per_minute`) is made at a connection's first `auth`: most never send one."""

    __slots__ = (
        "_auth",
        "_frame_at",
        "_frame_tokens",
        "_rates",
        "_subscribe_at",
        "_subscribe_tokens",
        "strikes",
    )

    def __init__(self, rates: Rates, now: float) -> None:
        self._rates = rates
        self._frame_tokens = float(rates.frames_burst)
        self._frame_at = now
        self._subscribe_tokens = float(rates.subscribes_burst)
        self._subscribe_at = now
        #: Refusals in a row (frames or subscribes refused, nothing accepted between).
        self.strikes = 0
        self._auth: TokenBucket | None = None

    def take_frame(self, now: float) -> bool:
        """Spend a frame's token if there is one."""
        rates = self._rates
        ok, self._frame_tokens, self._frame_at = _spend_one(
            self._frame_tokens, self._frame_at, rates.frames_per_s, rates.frames_burst, now
        )
        return ok

    def take_subscribe(self, now: float) -> bool:
        """Spend a subscribe's token (one per topic) if there is one."""
        rates = self._rates
        ok, self._subscribe_tokens, self._subscribe_at = _spend_one(
            self._subscribe_tokens, self._subscribe_at, rates.subscribes_per_s, rates.subscribes_burst, now
        )
        return ok

    def take_auth(self, now: float) -> bool:
        """Spend an `auth` frame's token if there is one (`auth_per_minute`, that burst)."""
        bucket = self._auth
        if bucket is None:
            per_minute = self._rates.auth_per_minute
            bucket = self._auth = TokenBucket(per_minute / 60, per_minute, now)
        return bucket.take(1, now)

    def refused(self) -> bool:
        """Count a refusal; True once the streak reaches the limit."""
        self.strikes += 1
        return self.struck_out

    def accepted(self) -> None:
        self.strikes = 0

    @property
    def struck_out(self) -> bool:
        return self.strikes >= self._rates.frames_burst
