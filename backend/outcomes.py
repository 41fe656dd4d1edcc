"""What a store keeps of an idempotent write (`idempotency.py` runs the writes): the
record, and the error a store raises when a concurrent unit kept one under the same key
first. Its own module so that the store contract (`store.py`) and the idempotency logic
both depend on it, and not on each other."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class KeyTaken(Exception):
    """Raised by `Tx.remember`: a concurrent unit committed an outcome under the key
    first. The unit is rolled back; running it again finds that outcome."""


@dataclass(frozen=True, slots=True)
class Remembered:
    """A use case's first outcome, as a store keeps it under (scope, key)."""

    scope: str
    key: str
    #: The use case's name (`sessions.create`): with the result, the HTTP response.
    operation: str
    #: `fingerprint(operation, arguments)`: a resend must match it.
    fingerprint: str
    #: The use case's result as JSON.
    result: str
    expires_at: datetime
