"""Connection slots: how many WebSockets a process, and one client address, may hold.

A slot is taken before the upgrade (a refusal is an HTTP 503 with `Retry-After`) and
given back when the connection's last call has ended (`calls.Calls.release_after_calls`:
a call outlives its connection, so the slot bounds calls as it bounds connections).
"""

from __future__ import annotations

from collections.abc import Callable

from .settings import RealtimeSettings


class Slots:
    __slots__ = ("_per_address", "_settings", "_taken")

    def __init__(self, settings: Callable[[], RealtimeSettings]) -> None:
        #: Read per take: a hub's settings may be replaced while it serves.
        self._settings = settings
        #: Open (or opening) WebSockets per client address, for the per-address limit.
        self._per_address: dict[str, int] = {}
        self._taken = 0

    def take(self, address: str) -> bool:
        """Count a connection being opened from `address`; False (nothing counted) if
        the process or the address is at its limit. `release` undoes it."""
        settings = self._settings()
        held = self._per_address.get(address, 0)
        if self._taken >= settings.max_connections or held >= settings.max_connections_per_address:
            return False
        self._taken += 1
        self._per_address[address] = held + 1
        return True

    def release(self, address: str) -> None:
        self._taken -= 1
        held = self._per_address[address] - 1
        if held:
            self._per_address[address] = held
        else:
            del self._per_address[address]

    def __len__(self) -> int:
        """Slots taken now."""
        return self._taken
