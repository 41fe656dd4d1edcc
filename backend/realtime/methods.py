"""Methods: typed request/response over the realtime socket, beside the topics.

A `MethodDef` is a declaration, like a `TopicDef`: a name, a Pydantic params model
and a result model, and the application error codes it may answer. A plain value
that the type generator reads (the TypeScript method map, `schemas/methods.json`)
and that clients name::

    CREATE: MethodDef[CreateSession, Session] = MethodDef(
        "sessions.create", CreateSession, Session, errors={"quota_exceeded": "Too many sessions."})

A `MethodRegistry` binds each declaration to its handler for one running app,
`async def handler(params, caller) -> result` (the `Caller`: who calls, over which
connection); `setup_realtime(..., methods=)` serves it. How a call runs (limits,
timeout, error mapping, and the response coming after the events it published) is
`calls.py`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, TypeAdapter

from .errors import ErrorCode
from .principal import Principal

P = TypeVar("P", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

#: A method name: dot-separated words (`sessions.create`).
METHOD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(?:\.[A-Za-z][A-Za-z0-9_]*)*")
#: An application error code: like the catalogue's (`quota_exceeded`).
ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who calls a method: the connection's principal (None with authentication off),
    its id (for logs and audits) and the client's address (for per-address limits);
    and the request's `idempotency_key` (None if it has none).

    A method that writes should honour the key: run at most once per key (and
    principal), store the first outcome with its change, and answer a resend with the
    same key with that outcome; the same key with other params is
    `ErrorCode.IDEMPOTENCY_KEY_REUSED` (docs/embedding.md, "Idempotent methods")."""

    principal: Principal | None
    connection_id: str
    address: str
    idempotency_key: str | None = None


#: Runs one call: the validated params, and its `Caller`. Returns the result (an
#: instance of the result model, or what validates as one). Raises `MethodError` to
#: answer with an error code.
MethodHandler = Callable[[P, Caller], Awaitable[R]]


class MethodError(Exception):
    """Raised by a handler to answer its request with an error: a code the method
    declares in `errors`, or one of the catalogue's (`ErrorCode.FORBIDDEN`,
    `ErrorCode.UNAVAILABLE`, ...). `message` is shown to the client: never put
    internals in it. Any other exception is answered `internal_error`, and logged."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = str(code)
        self.message = message
        self.details = details


class MethodDef(Generic[P, R]):
    """A method's declaration: its name, params and result models, and the application
    error codes it may answer (code → what it means, for the generated docs)."""

    __slots__ = ("_result_adapter", "description", "errors", "name", "params", "result")

    def __init__(
        self,
        name: str,
        params: type[P],
        result: type[R],
        *,
        description: str = "",
        errors: Mapping[str, str] | None = None,
    ) -> None:
        if len(name) > 200 or not METHOD_NAME.fullmatch(name):
            raise ValueError(f"{name!r}: a method name is dot-separated words, e.g. sessions.create")
        for model in (params, result):
            if not (isinstance(model, type) and issubclass(model, BaseModel)):
                raise TypeError(f"{name}: params and result must be Pydantic models, got {model!r}")
        errors = dict(errors or {})
        for code in errors:
            if not ERROR_CODE.fullmatch(code):
                raise ValueError(f"{name}: error code {code!r} must match {ERROR_CODE.pattern}")
            if code in ErrorCode.__members__.values():
                raise ValueError(f"{name}: {code!r} is a catalogue code; declare only the method's own")
        self.name = name
        self.params = params
        self.result = result
        self.description = description
        self.errors: dict[str, str] = dict(sorted(errors.items()))
        self._result_adapter: TypeAdapter[R] = TypeAdapter(result)

    def __repr__(self) -> str:
        return f"MethodDef({self.name!r})"

    def answers(self, code: str) -> bool:
        """Whether a call of this method may answer `code`."""
        return code in self.errors or code in ErrorCode.__members__.values()

    def encode_result(self, value: object) -> bytes:
        """Validate a handler's return value against the result model and serialise it.
        A wrong value is a bug in the handler: `pydantic.ValidationError`."""
        return self._result_adapter.dump_json(self._result_adapter.validate_python(value))


@dataclass(frozen=True, slots=True)
class BoundMethod:
    """A declaration bound to its handler, in one registry."""

    method: MethodDef[Any, Any]
    handler: MethodHandler[Any, Any]


class MethodRegistry:
    """The methods one app serves, each declaration bound to its handler."""

    def __init__(self) -> None:
        self._bound: dict[str, BoundMethod] = {}

    def add(self, method: MethodDef[P, R], handler: MethodHandler[P, R]) -> MethodDef[P, R]:
        if method.name in self._bound:
            raise ValueError(f"method {method.name!r} is already registered")
        self._bound[method.name] = BoundMethod(method, handler)
        return method

    def get(self, name: str) -> BoundMethod | None:
        return self._bound.get(name)

    def __iter__(self) -> Iterator[MethodDef[Any, Any]]:
        return (bound.method for bound in self._bound.values())

    def __len__(self) -> int:
        return len(self._bound)
