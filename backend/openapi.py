"""The demo's OpenAPI 3.1 document: every HTTP route, built from the models the handlers use.

The request and response schemas come from the same Pydantic models `api.py` validates
and answers with (`TypeAdapter.json_schemas`, refs into ``#/components/schemas/``), so
the document cannot drift from the code without `scripts/check-types` failing; the
status codes are the ones `guard.Guard`, `api.json_errors` and the handlers answer.

`GET /api/openapi.json` serves it without a token (it reveals only the API's shape, which
this repository publishes anyway) but, like the rest of ``/api/``, only to an allowed
Host. `scripts/generate-types` writes it to ``schemas/openapi.json``
(``python -m backend.openapi OUT``).
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, NotRequired

from aiohttp import hdrs, web
from pydantic import ConfigDict, TypeAdapter, with_config
from typing_extensions import TypedDict

from aiohttp_realtime import HUB_KEY, allowed_host
from aiohttp_realtime.protocol import IdempotencyKey

from .idempotency import HEADER, WINDOW_S
from .inputs import CreateSession, PatchSession, PostMessage
from .models import Message, Session

OPENAPI_PATH = "/api/openapi.json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@with_config(ConfigDict(extra="forbid"))
class ValidationIssue(TypedDict):
    type: str
    loc: list[str | int]
    msg: str


@with_config(ConfigDict(extra="forbid"))
class Error(TypedDict):
    """Every error under /api/ (and a crash anywhere): a stable code and a message."""

    error: str
    message: str
    details: NotRequired[list[ValidationIssue]]  # 422 invalid_body only
    request_id: NotRequired[str]  # 500 only: names the server's log line


@with_config(ConfigDict(extra="forbid"))
class Health(TypedDict):
    status: Literal["ok"]


@with_config(ConfigDict(extra="forbid"))
class ReadyChecks(TypedDict):
    broker: bool
    store: bool
    serving: bool


@with_config(ConfigDict(extra="forbid"))
class Readiness(TypedDict):
    ready: bool
    checks: ReadyChecks


_SCHEMAS: dict[str, tuple[Literal["validation", "serialization"], Any]] = {
    "CreateSession": ("validation", CreateSession),
    "PatchSession": ("validation", PatchSession),
    "PostMessage": ("validation", PostMessage),
    "Session": ("serialization", Session),
    "SessionList": ("serialization", list[Session]),
    "Message": ("serialization", Message),
    "Error": ("serialization", Error),
    "Health": ("serialization", Health),
    "Readiness": ("serialization", Readiness),
}

#: Each error status: its description (the `error` codes it carries) and its headers.
_ERRORS: dict[str, tuple[str, tuple[str, ...]]] = {
    "400": (
        "invalid_json (not UTF-8, not JSON, nested too deep), invalid_body_encoding, body_aborted, "
        "invalid_idempotency_key (empty, over 255 characters, not printable ASCII, or sent twice)",
        (),
    ),
    "401": ("unauthorized: no valid bearer token (only when authentication is on)", ("WWW-Authenticate",)),
    "403": (
        "host_not_allowed (the Host header), origin_not_allowed (a write's Origin), "
        "forbidden (the token lacks the scope)",
        (),
    ),
    "404": ("not_found: no session with this id", ()),
    "408": ("request_timeout: the body did not arrive in time", ()),
    "409": ("quota_exceeded: the store is at one of its limits", ()),
    "413": ("request_entity_too_large: the body exceeds the size limit", ()),
    "415": ("unsupported_media_type: a write's body must be Content-Type application/json", ()),
    "422": (
        "invalid_body: fields that break the request schema; `details` lists them. "
        "idempotency_key_reused: the Idempotency-Key was used for another request (another "
        "operation, session or body) within its window; nothing was changed",
        (),
    ),
    "429": ("rate_limited: too many writes from this address", ("Retry-After",)),
    "500": ("internal_server_error: a bug; `request_id` names the log line", ()),
    "503": (
        "unavailable: the database or the broker is unreachable; the change may already be saved: "
        "retry later with the same Idempotency-Key",
        ("Retry-After",),
    ),
}
_HEADER_DOCS = {
    "WWW-Authenticate": "Always `Bearer`.",
    "Retry-After": "Seconds to wait before retrying.",
}

_READ = ["401", "403", "500", "503"]
_WRITE = ["400", "401", "403", "408", "409", "413", "415", "422", "429", "500", "503"]
_ID = [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}]
_IDEMPOTENCY_KEY = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Makes the write idempotent (draft-ietf-httpapi-idempotency-key-header): a fresh key per "
        "write (a UUID), sent again when the write is retried after an unknown outcome (a timeout, "
        f"503, a dropped connection). Within {WINDOW_S / 3600:g} h the first success is answered "
        "again (same status and body) and nothing is changed; a failure keeps nothing, so its "
        'retry runs again. Scoped per token principal. The draft\'s quoted form (`"…"`) or the '
        "bare key."
    ),
    "schema": TypeAdapter(IdempotencyKey).json_schema(),
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: str, description: str, headers: tuple[str, ...] = ()) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema)}},
    }
    if headers:
        response["headers"] = {
            name: {"description": _HEADER_DOCS[name], "required": True, "schema": {"type": "string"}}
            for name in headers
        }
    return response


def _operation(
    operation_id: str,
    summary: str,
    ok: dict[str, dict[str, Any]],
    errors: list[str],
    *,
    body: str | None = None,
    public: bool = False,
    idempotent: bool = False,
) -> dict[str, Any]:
    responses = dict(ok)
    responses.update({status: {"$ref": f"#/components/responses/{status}"} for status in errors})
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if idempotent:
        operation["parameters"] = [{"$ref": "#/components/parameters/IdempotencyKey"}]
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    if public:
        operation["security"] = []
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def _paths() -> dict[str, Any]:
    session = {"200": _json("Session", "The session.")}
    return {
        "/api/sessions": {
            "get": _operation(
                "listSessions", "Every session", {"200": _json("SessionList", "The sessions.")}, _READ
            ),
            "post": _operation(
                "createSession",
                "Create a session (published on sessions.state)",
                {"201": _json("Session", "The new session.")},
                _WRITE,
                body="CreateSession",
                idempotent=True,
            ),
        },
        "/api/sessions/{id}": {
            "parameters": _ID,
            "get": _operation("getSession", "One session", session, [*_READ, "404"]),
            "patch": _operation(
                "patchSession",
                "Change a session's title and/or state (published)",
                session,
                [*_WRITE, "404"],
                body="PatchSession",
                idempotent=True,
            ),
            "delete": _operation(
                "deleteSession",
                "Delete a session (published)",
                {"204": {"description": "Deleted."}},
                ["400", "401", "403", "404", "422", "429", "500", "503"],
                idempotent=True,
            ),
        },
        "/api/sessions/{id}/messages": {
            "parameters": _ID,
            "post": _operation(
                "postMessage",
                "Add a message to a session (published on sessions.activity:{id})",
                {"201": _json("Message", "The new message.")},
                [*_WRITE, "404"],
                body="PostMessage",
                idempotent=True,
            ),
        },
        **_sse_paths(),
        OPENAPI_PATH: {
            "get": _operation(
                "getOpenApi",
                "This document (no token needed)",
                {"200": {"description": "OpenAPI 3.1", "content": {"application/json": {"schema": {}}}}},
                ["403", "500"],
                public=True,
            ),
        },
        "/healthz": {
            "get": _operation(
                "healthz",
                "The process serves HTTP (any Host, no token)",
                {"200": _json("Health", "Always, while it serves.")},
                ["500"],
                public=True,
            ),
        },
        "/readyz": {
            "get": _operation(
                "readyz",
                "Whether it should get traffic (any Host, no token)",
                {
                    "200": _json("Readiness", "Ready: every check is true."),
                    "503": _json("Readiness", "Not ready: a check is false (or shutting down)."),
                },
                ["500"],
                public=True,
            ),
        },
        "/metrics": {
            "get": _operation(
                "metrics",
                "Prometheus metrics, text exposition format (no token; allowed Hosts only)",
                {
                    "200": {
                        "description": "The metrics.",
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
                ["403", "500"],
                public=True,
            ),
        },
    }


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _sse_paths() -> dict[str, Any]:
    """The realtime protocol's SSE transport (docs/protocol.md, Transports: WebSocket and
    SSE): its frames are the WebSocket's (schemas/server-message.json, client-message.json)."""
    stream = {
        "operationId": "realtimeSseStream",
        "summary": "The realtime protocol's server frames as Server-Sent Events (the WebSocket fallback)",
        "description": (
            "One event `data: <server frame JSON>` per frame, the first a `hello` with `transport: sse` "
            "and `sse_secret`; `: ping` comments every `hello.heartbeat_s`; `event: close` with "
            '`{"code", "reason"}` before the stream ends. Authenticated like the WebSocket (bearer header '
            "or cookie). No Last-Event-ID replay."
        ),
        "responses": {
            "200": {
                "description": "The stream (`Cache-Control: no-cache, no-transform`, "
                "`X-Accel-Buffering: no`): one event per server frame (schemas/server-message.json).",
                "content": {"text/event-stream": {"schema": {}}},
            },
            "401": _error("unauthorized: a valid token is required"),
            "403": _error("host_not_allowed, origin_not_allowed"),
            "500": {"$ref": "#/components/responses/500"},
            "503": _error("too_many_connections: retry after Retry-After"),
        },
    }
    frames = {
        "description": "One client frame (schemas/client-message.json) or an array of at most 64.",
        "oneOf": [
            {"type": "object"},
            {"type": "array", "items": {"type": "object"}, "maxItems": 64},
        ],
    }
    post = {
        "operationId": "realtimeSsePost",
        "summary": "Client frames for an SSE stream; their answers come on the stream",
        "parameters": [
            {"name": "connection_id", "in": "path", "required": True, "schema": {"type": "string"}},
            {
                "name": "X-Realtime-Secret",
                "in": "header",
                "required": True,
                "description": "The stream's `hello.sse_secret`.",
                "schema": {"type": "string"},
            },
        ],
        "requestBody": {"required": True, "content": {"application/json": {"schema": frames}}},
        "responses": {
            "202": {
                "description": "Handled, in order after earlier POSTs.",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"accepted": {"type": "integer"}},
                            "required": ["accepted"],
                        }
                    }
                },
            },
            "400": _error("invalid_json: the body is not JSON"),
            "403": _error("bad_secret, origin_not_allowed, host_not_allowed"),
            "404": _error("unknown_connection: no such stream on this node, or closed: reconnect"),
            "413": _error("frame_too_large, too_many_frames, body_too_large"),
            "415": _error("unsupported_media_type: send application/json"),
            "500": {"$ref": "#/components/responses/500"},
        },
    }
    return {"/api/realtime/sse": {"get": stream}, "/api/realtime/sse/{connection_id}": {"post": post}}


def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (deterministic: the same models give the same bytes)."""
    keys, defs = TypeAdapter.json_schemas(
        [(name, mode, TypeAdapter(tp)) for name, (mode, tp) in _SCHEMAS.items()],
        ref_template="#/components/schemas/{model}",
    )
    schemas = dict(defs.get("$defs", {}))
    for (name, _mode), schema in keys.items():
        if schema != _ref(name):
            schemas[name] = schema  # not a named model (e.g. a list): defined under its key
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "aiohttp-realtime demo HTTP API",
            "version": version("aiohttp-realtime-demo"),
            "description": (
                "Every change is also published to the WebSocket's topics (docs/protocol.md). "
                "Every request must name an allowed Host (loopback on the served port by default), "
                "else 403 host_not_allowed (except /healthz and /readyz). Writes must send "
                "`Content-Type: application/json` (415) and, from a browser, an allowed Origin (403). "
                "Another method on a listed path is a 405 (with Allow), an unknown path under /api/ "
                "a 404; both carry the Error body."
            ),
        },
        "paths": _paths(),
        "components": {
            "schemas": dict(sorted(schemas.items())),
            "responses": {
                status: _json("Error", description, headers)
                for status, (description, headers) in _ERRORS.items()
            },
            "parameters": {"IdempotencyKey": _IDEMPOTENCY_KEY},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "Only with --tokens-file: `read` for reads, `write` for writes.",
                }
            },
        },
        # A token when authentication is on; none when it is off (local development).
        "security": [{"bearer": []}, {}],
    }


@functools.cache
def document_bytes() -> bytes:
    return (json.dumps(document(), indent=2, ensure_ascii=False) + "\n").encode()


async def openapi_document(_request: web.Request) -> web.Response:
    return web.Response(body=document_bytes(), content_type="application/json")


@web.middleware
async def serve_openapi(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer `GET /api/openapi.json` before `guard.Guard`, which asks every /api/ request
    for a token; with the same Host check (a refused Host goes on to the guard's 403)."""
    if (
        request.path == OPENAPI_PATH
        and request.method in (hdrs.METH_GET, hdrs.METH_HEAD)
        and allowed_host(request, request.app[HUB_KEY].settings)
    ):
        return await openapi_document(request)
    return await handler(request)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m backend.openapi OUT.json", file=sys.stderr)
        return 2
    out = Path(argv[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(document_bytes())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
