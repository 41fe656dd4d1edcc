"""The authenticated caller, as the rest of the library sees it."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller. `scopes` are the application's to define and check
    (in its `authorize` rule and its HTTP handlers)."""

    id: str
    scopes: frozenset[str] = field(default_factory=frozenset)
