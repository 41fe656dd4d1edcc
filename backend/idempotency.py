"""Idempotent writes: a write resent under the same key runs once, and every resend
gets the first outcome.

A client that does not know whether its write happened (a timeout, HTTP 503 or the
socket's `unavailable`, a dropped connection) resends it with the same key: the
`Idempotency-Key` header over HTTP (the IETF httpapi draft), `idempotency_key` on a
socket `request` frame. The use case (`service.py`) runs under the key through
`Once.run`, one implementation for both ways in:

1. in the use case's unit of work (`store.py`), holding its topics' locks, the store
   is asked for the outcome remembered under (scope, key) (`Tx.recall`). If there is
   one, the unit changes nothing and the use case returns that outcome, or raises
   `KeyReused` when the remembered request was another one (its fingerprint differs);
2. else the use case runs; if it succeeded, its result (what it returns: enough to
   rebuild the HTTP response, whose status follows from the operation) is kept under
   the key *in the same unit* (`Tx.remember`): committed with the change, or not at
   all. A unit whose publish fails after its commit (the client sees 503) has so
   already kept the outcome that its resend finds.

A failed use case (unknown id, a quota, invalid input) keeps nothing: resending it
runs it again. Keys are scoped per principal (`scope_of`): one user's key never
reaches another's outcome; with authentication off every client shares the anonymous
scope. An outcome is kept for a window (`WINDOW_S`, 24 h by default); after it, the
key is free again. The stores purge expired outcomes and bound what they keep
(`store.py`'s limits).

Concurrent requests with the same key: one with the same fingerprint names the same
topics, so its unit waits for the first's locks, then finds its outcome. Two with
different requests under one key may hold different topics: PostgreSQL's primary key
on (scope, key) makes the second's insert wait for the first's commit, then fail
(`KeyTaken`): its unit is rolled back and run again, and finds the first's outcome.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pydantic
from pydantic import BaseModel, TypeAdapter

from aiohttp_realtime import Principal
from aiohttp_realtime.protocol import MAX_IDEMPOTENCY_KEY, IdempotencyKey

from .outcomes import KeyTaken, Remembered

if TYPE_CHECKING:
    from .store import Store, Topic, Tx

#: How long an outcome is kept under its key (seconds): a resend later runs again.
WINDOW_S = 24 * 3600.0
#: The scope of every key when authentication is off.
ANONYMOUS = "anonymous"
#: The HTTP header (draft-ietf-httpapi-idempotency-key-header).
HEADER = "Idempotency-Key"

R = TypeVar("R", bound=BaseModel)
_KEY: TypeAdapter[str] = TypeAdapter(IdempotencyKey)


class InvalidKey(ValueError):
    """A key that is empty, longer than 255 characters or not printable ASCII (400)."""


class KeyReused(Exception):
    """The key was used for another request (another operation, or other arguments)
    within the window: nothing was run (HTTP 422, socket `idempotency_key_reused`)."""


def scope_of(principal: Principal | None) -> str:
    """Whose keys: the principal's id, or `ANONYMOUS` with authentication off."""
    return ANONYMOUS if principal is None else f"principal:{principal.id}"


def valid_key(key: str) -> str:
    try:
        return _KEY.validate_python(key)
    except pydantic.ValidationError:
        msg = f"an idempotency key is 1-{MAX_IDEMPOTENCY_KEY} printable ASCII characters"
        raise InvalidKey(msg) from None


def header_key(values: list[str]) -> str | None:
    """The key of a request's `Idempotency-Key` headers: None without one. The draft's
    form is a quoted string (`"8e03978e-…"`); a bare key is taken as it is."""
    if not values:
        return None
    if len(values) > 1:
        raise InvalidKey(f"send one {HEADER} header")
    value = values[0].strip(" \t")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    return valid_key(value)


@dataclass(frozen=True, slots=True)
class Idempotency:
    """The key a write runs under, in its principal's scope."""

    scope: str
    key: str

    @classmethod
    def of(cls, principal: Principal | None, key: str | None) -> Idempotency | None:
        return None if key is None else cls(scope_of(principal), valid_key(key))


def fingerprint(operation: str, arguments: Mapping[str, Any]) -> str:
    """What identifies a request under its key: the operation and its validated
    arguments (the same over HTTP and over the socket, so a resend may take either)."""
    canonical = json.dumps([operation, arguments], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def utcnow() -> datetime:
    return datetime.now(UTC)


class Once:
    """Runs use cases once per key (see the module docstring). `clock` is replaceable
    (tests move time past the window without waiting)."""

    def __init__(self, store: Store, *, window_s: float = WINDOW_S, clock: Callable[[], datetime] = utcnow):
        if window_s <= 0:
            raise ValueError("the idempotency window must be positive")
        self.store = store
        self.window = timedelta(seconds=window_s)
        self.clock = clock

    async def run(
        self,
        key: Idempotency | None,
        operation: str,
        arguments: Mapping[str, Any],
        topics: Iterable[Topic],
        result: type[R],
        body: Callable[[Tx], Awaitable[R | None]],
    ) -> R | None:
        """`body` in a unit of work holding `topics`; under `key`, at most once: the
        first outcome (a non-None result) is kept with the change and returned to every
        resend. Raises `KeyReused` for the key of another request, and what `body` and
        the unit raise."""
        topics = list(topics)
        if key is None:
            async with self.store.write(topics) as tx:
                return await body(tx)
        expected = fingerprint(operation, arguments)
        for attempt in range(2):
            try:
                async with self.store.write(topics) as tx:
                    now = self.clock()
                    first = await tx.recall(key.scope, key.key, now)
                    if first is not None:
                        if first.fingerprint != expected:
                            raise KeyReused(f"this key was used for another request ({first.operation})")
                        return result.model_validate_json(first.result)
                    value = await body(tx)
                    if value is not None:
                        kept = value.model_dump_json()
                        record = Remembered(key.scope, key.key, operation, expected, kept, now + self.window)
                        await tx.remember(record, now)
                    return value
            except KeyTaken:
                if attempt:  # taken twice: another request holds it
                    raise KeyReused("this key is being used by another request") from None
        raise AssertionError("unreachable")
