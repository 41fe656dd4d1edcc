"""The authenticated caller, as the rest of the library sees it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `scopes` are the application's to define and check
    (in its `authorize` rule and its HTTP handlers).

    `expires_at` (timezone-aware; None: never) is when the credential it was
    authenticated with stops being valid: a connection still open then is closed with
    4001 unless the client presented a new token first (an `auth` frame), and an
    `authenticate` hook that returns a principal already expired refuses the request
    (401). It is not part of who the caller is: equality and hashing ignore it, so a
    refreshed credential is the same principal (and shares snapshots with it)."""

    id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    expires_at: datetime | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if self.expires_at is not None and self.expires_at.utcoffset() is None:
            # A naive time is ambiguous (`datetime.now()` is local): refused, not guessed.
            raise ValueError("Principal.expires_at must be timezone-aware (e.g. datetime.now(UTC))")

    def expires_in(self, now: datetime) -> float | None:
        """Seconds from `now` until the credential expires (negative once it has), or
        None when it does not expire."""
        return None if self.expires_at is None else (self.expires_at - now).total_seconds()
