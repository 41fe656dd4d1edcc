"""The demo's methods: the HTTP API's writes, callable over the realtime socket.

Declared once (what the type generator reads: `--methods backend.methods:METHODS`)
and bound to `SessionService` by `build_methods`, the same service the HTTP
handlers call, with the same validation (`inputs.py`), the same authorization
(`access.may_write`) and the same per-address write limit (`guard.Guard`): a
change made over the socket and one made over HTTP are the same change.

| method            | HTTP twin                          | errors of its own           |
|-------------------|------------------------------------|-----------------------------|
| `sessions.create` | `POST /api/sessions`               | `quota_exceeded`            |
| `sessions.update` | `PATCH /api/sessions/{id}`         | `not_found`, `quota_exceeded` |
| `sessions.remove` | `DELETE /api/sessions/{id}`        | `not_found`                 |
| `messages.send`   | `POST /api/sessions/{id}/messages` | `not_found`                 |

Beside these, any call may answer `forbidden` (the token lacks the `write` scope),
`rate_limited` (too many writes from this address), `unavailable` (the store or
the broker is unreachable) and the library's own codes.

Each honours the request's `idempotency_key` (`Caller.idempotency_key`) as the HTTP
API honours `Idempotency-Key`, through the same service code (`idempotency.Once`): a
resend with the same key answers the first result and changes nothing; the key of
another call is `idempotency_key_reused`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from pydantic import BaseModel

from aiohttp_realtime import Caller, ErrorCode, MethodDef, MethodError, MethodRegistry

from .access import may_write
from .guard import Guard
from .idempotency import Idempotency, KeyReused
from .inputs import CreateSession, RemoveSession, SendMessage, SessionRemoved, UpdateSession
from .models import Message, Session
from .service import SessionService
from .store import QuotaExceeded, StoreUnavailable

NOT_FOUND = {"not_found": "No session has this id (never created, or removed)."}
QUOTA = {"quota_exceeded": "A limit of the store was reached (sessions, or their titles' total size)."}

CREATE: MethodDef[CreateSession, Session] = MethodDef(
    "sessions.create", CreateSession, Session, description="Create a session.", errors=QUOTA
)
UPDATE: MethodDef[UpdateSession, Session] = MethodDef(
    "sessions.update",
    UpdateSession,
    Session,
    description="Change a session's title and/or state.",
    errors=NOT_FOUND | QUOTA,
)
REMOVE: MethodDef[RemoveSession, SessionRemoved] = MethodDef(
    "sessions.remove",
    RemoveSession,
    SessionRemoved,
    description="Delete a session, its messages and its terminals.",
    errors=NOT_FOUND,
)
SEND: MethodDef[SendMessage, Message] = MethodDef(
    "messages.send",
    SendMessage,
    Message,
    description="Add a message to a session's activity.",
    errors=NOT_FOUND,
)

#: What the type generator publishes.
METHODS = (CREATE, UPDATE, REMOVE, SEND)

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


def build_methods(service: SessionService, guard: Guard) -> MethodRegistry:
    """The methods bound to `service`, behind the HTTP API's write checks."""

    def write(
        run: Callable[[P, Idempotency | None], Awaitable[R | None]],
    ) -> Callable[[P, Caller], Awaitable[R]]:
        async def handler(params: P, caller: Caller) -> R:
            if not may_write(caller.principal):
                raise MethodError(ErrorCode.FORBIDDEN, "this token may not change anything")
            if not guard.write_allowed(caller.address):
                raise MethodError(ErrorCode.RATE_LIMITED, "too many writes; slow down")
            key = Idempotency.of(caller.principal, caller.idempotency_key)
            async with _domain_errors():
                result = await run(params, key)
            if result is None:
                raise MethodError("not_found", "no such session")
            return result

        return handler

    async def create(p: CreateSession, key: Idempotency | None) -> Session:
        return await service.create_session(p.title, key=key)

    async def update(p: UpdateSession, key: Idempotency | None) -> Session | None:
        return await service.update_session(p.id, title=p.title, state=p.state, key=key)

    async def remove(p: RemoveSession, key: Idempotency | None) -> SessionRemoved | None:
        return SessionRemoved(id=p.id) if await service.delete_session(p.id, key=key) else None

    async def send(p: SendMessage, key: Idempotency | None) -> Message | None:
        return await service.add_message(p.session_id, p.role, p.text, key=key)

    registry = MethodRegistry()
    registry.add(CREATE, write(create))
    registry.add(UPDATE, write(update))
    registry.add(REMOVE, write(remove))
    registry.add(SEND, write(send))
    return registry


@asynccontextmanager
async def _domain_errors() -> AsyncIterator[None]:
    """The store's refusals as the methods' error codes (the HTTP API's 409 and 503)."""
    try:
        yield
    except QuotaExceeded as exc:
        raise MethodError("quota_exceeded", exc.message) from None
    except KeyReused as exc:
        msg = f"{exc}; use a fresh idempotency_key for a new call"
        raise MethodError(ErrorCode.IDEMPOTENCY_KEY_REUSED, msg) from None
    except StoreUnavailable:
        raise MethodError(ErrorCode.UNAVAILABLE, "the store is unreachable; retry later") from None
