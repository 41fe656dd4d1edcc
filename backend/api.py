"""The demo's HTTP JSON API: every change goes through `SessionService`, which publishes.

Bad input is a 4xx with a JSON body `{"error": code, "message": ..., "details"?}`,
never a 500: invalid JSON or `Idempotency-Key` 400, no token 401, not allowed 403,
unknown id 404, body too slow 408, over a quota 409, body too large 413, not JSON 415,
invalid fields or a reused `Idempotency-Key` 422, too many writes 429. `guard.Guard`
runs before every handler here.

Every write takes an optional `Idempotency-Key` header (`idempotency.py`): a resend
with the same key (and the same request) answers the first success again and changes
nothing.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pydantic
from aiohttp import web
from pydantic import BaseModel

from aiohttp_realtime import PRINCIPAL_KEY, BrokerUnavailable
from aiohttp_realtime.calls import field_errors

from .access import may_read_sessions
from .guard import read_json
from .idempotency import HEADER, Idempotency, InvalidKey, KeyReused, header_key
from .inputs import CreateSession, PatchSession, PostMessage
from .service import SessionService
from .store import QuotaExceeded, StoreUnavailable

log = logging.getLogger(__name__)
SERVICE_KEY = web.AppKey("session_service", SessionService)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

M = TypeVar("M", bound=BaseModel)


def json_error(status: int, error: str, message: str, **extra: Any) -> web.Response:
    return web.json_response({"error": error, "message": message, **extra}, status=status)


async def _body(request: web.Request, model: type[M]) -> M:
    data = await read_json(request)
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        details = field_errors(exc)  # as the socket's `invalid_params`: no input echoed
        raise web.HTTPUnprocessableEntity(
            text=json.dumps({"error": "invalid_body", "message": "invalid fields", "details": details}),
            content_type="application/json",
        ) from None


def _key(request: web.Request) -> Idempotency | None:
    """The request's `Idempotency-Key`, in its principal's scope (400 if invalid)."""
    try:
        key = header_key(request.headers.getall(HEADER, []))
    except InvalidKey as exc:
        raise web.HTTPBadRequest(
            text=json.dumps({"error": "invalid_idempotency_key", "message": str(exc)}),
            content_type="application/json",
        ) from None
    return Idempotency.of(request.get(PRINCIPAL_KEY), key)


def _not_found(session_id: str) -> web.HTTPNotFound:
    return web.HTTPNotFound(
        text=json.dumps({"error": "not_found", "message": f"no session {session_id!r}"}),
        content_type="application/json",
    )


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(text=model.model_dump_json(), status=status, content_type="application/json")


routes = web.RouteTableDef()


def _may_read(request: web.Request) -> None:
    """The rule that guards `sessions.*` subscriptions guards these reads too."""
    if not may_read_sessions(request.get(PRINCIPAL_KEY)):
        raise web.HTTPForbidden(
            text=json.dumps({"error": "forbidden", "message": "this token may not read sessions"}),
            content_type="application/json",
        )


@routes.get("/api/sessions")
async def list_sessions(request: web.Request) -> web.Response:
    _may_read(request)
    sessions = await request.app[SERVICE_KEY].store.sessions()
    return web.Response(
        text="[" + ",".join(s.model_dump_json() for s in sessions) + "]",
        content_type="application/json",
    )


@routes.post("/api/sessions")
async def create_session(request: web.Request) -> web.Response:
    key = _key(request)
    body = await _body(request, CreateSession)
    return _json(await request.app[SERVICE_KEY].create_session(body.title, key=key), status=201)


@routes.get("/api/sessions/{id}")
async def get_session(request: web.Request) -> web.Response:
    _may_read(request)
    session = await request.app[SERVICE_KEY].store.session(request.match_info["id"])
    if session is None:
        raise _not_found(request.match_info["id"])
    return _json(session)


@routes.patch("/api/sessions/{id}")
async def patch_session(request: web.Request) -> web.Response:
    key = _key(request)
    body = await _body(request, PatchSession)
    service = request.app[SERVICE_KEY]
    sid = request.match_info["id"]
    session = await service.update_session(sid, title=body.title, state=body.state, key=key)
    if session is None:
        raise _not_found(request.match_info["id"])
    return _json(session)


@routes.delete("/api/sessions/{id}")
async def delete_session(request: web.Request) -> web.Response:
    key = _key(request)
    if not await request.app[SERVICE_KEY].delete_session(request.match_info["id"], key=key):
        raise _not_found(request.match_info["id"])
    return web.Response(status=204)


@routes.post("/api/sessions/{id}/messages")
async def post_message(request: web.Request) -> web.Response:
    key = _key(request)
    body = await _body(request, PostMessage)
    service = request.app[SERVICE_KEY]
    message = await service.add_message(request.match_info["id"], body.role, body.text, key=key)
    if message is None:
        raise _not_found(request.match_info["id"])
    return _json(message, status=201)


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every HTTP error under /api/ answers JSON (aiohttp's own are text/plain)."""
    try:
        return await handler(request)
    except QuotaExceeded as exc:
        return json_error(409, "quota_exceeded", exc.message)
    except KeyReused as exc:
        return json_error(422, "idempotency_key_reused", f"{exc}; use a fresh {HEADER} for a new request")
    except (BrokerUnavailable, StoreUnavailable) as exc:
        # Redis or PostgreSQL is unreachable: nothing was changed (a unit commits only
        # with its locks held) - try again later.
        log.warning("%s %s: %s", request.method, request.path, exc)
        msg = "a backing service is unreachable; retry later (a change may already be saved)"
        response = json_error(503, "unavailable", msg)
        response.headers["Retry-After"] = "1"
        return response
    except web.HTTPException as exc:
        if not request.path.startswith("/api/") or exc.content_type == "application/json":
            raise
        if exc.status < 400:
            raise
        code = exc.reason.lower().replace(" ", "_")
        response = json_error(exc.status, code, exc.reason)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
