"""AsyncAPI 3.0 (`asyncapi.json`): the same contract as `schemas/`, for AsyncAPI tooling.

Built from the JSON Schema documents `schemas.schemas` returns, never from the
models a second time, so the two cannot disagree. Every `$defs` entry of those
documents becomes one `components.schemas` entry (their `#/$defs/` references
rewritten); a name two documents define must be defined identically.

The document describes a *client*: it sends `subscribe`, `unsubscribe`, `ping`,
`request` and `auth` on the connection's channel and receives `hello`, `error`,
`pong`, `response` and `authed` there, and each topic's `snapshot` and `event` on
the topic's channel, whose address is the topic's name pattern
(`sessions.activity:{session_id}`).
Each method is one more `send` operation on the connection's channel, whose reply
is its typed `response`. The topic channels are logical: every frame travels over
the one WebSocket. The catalogues are
`components.schemas.ErrorCode` and `CloseCode` (a `const` per code, documented,
close codes with `x-reconnect`).

AsyncAPI's Schema Object is JSON Schema draft 07 plus a `discriminator` that is a
property name, not pydantic's OpenAPI-style object: that one is published as
`x-discriminator`, and `tsType` (a hint for json2ts) as `x-ts-type`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..methods import MethodDef
from ..protocol import PROTOCOL_VERSION
from ..topics import PARAM_VALUE, TopicDef
from .schemas import TopicTypes, method_type_name, schemas, topic_types

VERSION = "3.0.0"
CONNECTION = "connection"
_RENAMED = {"discriminator": "x-discriminator", "tsType": "x-ts-type"}
#: (message key, frame class name, the operation's action) of the connection's frames.
_FRAMES = [
    ("subscribe", "SubscribeFrame", "send"),
    ("unsubscribe", "UnsubscribeFrame", "send"),
    ("ping", "PingFrame", "send"),
    ("request", "RequestFrame", "send"),
    ("auth", "AuthFrame", "send"),
    ("hello", "HelloFrame", "receive"),
    ("error", "ErrorFrame", "receive"),
    ("pong", "PongFrame", "receive"),
    ("response", "ResponseFrame", "receive"),
    ("authed", "AuthedFrame", "receive"),
]


def _rewrite(node: Any) -> Any:
    """References into `components.schemas`; keywords AsyncAPI reads otherwise renamed."""
    if isinstance(node, dict):
        return {_RENAMED.get(k, k): _rewrite(v) for k, v in node.items() if k != "$schema"}
    if isinstance(node, list):
        return [_rewrite(v) for v in node]
    if isinstance(node, str) and node.startswith("#/$defs/"):
        return "#/components/schemas/" + node.removeprefix("#/$defs/")
    return node


def _components(documents: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every definition of every document, plus the documents themselves by title."""
    merged: dict[str, Any] = {}
    for document in documents.values():
        body = {k: v for k, v in document.items() if k != "$defs"}
        for name, schema in [*document.get("$defs", {}).items(), (document["title"], body)]:
            schema = _rewrite(schema)
            if merged.setdefault(name, schema) != schema:
                raise ValueError(f"{name} is defined differently by two schemas")
    return dict(sorted(merged.items()))


def _ref(*path: str) -> dict[str, str]:
    return {"$ref": "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in path)}


def _name_regex(pattern: str) -> str:
    """An ECMAScript regex for the topic names of a pattern."""
    parts = re.split(r"\{[A-Za-z_][A-Za-z0-9_]*\}", pattern)
    literal = [re.sub(r"([.^$*+?()\[\]{}|\\/])", r"\\\1", part) for part in parts]
    return "^" + PARAM_VALUE.pattern.join(literal) + "$"


def _topic_message(t: TopicTypes, kind: str, frame: str, payload: Any) -> dict[str, Any]:
    return {
        "name": kind,
        "title": f"{t.pattern} {kind}",
        "summary": f"`{kind}` frame of topic `{t.pattern}`.",
        "contentType": "application/json",
        "payload": {
            "allOf": [
                _ref("components", "schemas", frame),
                {
                    "type": "object",
                    "properties": {
                        "topic": {"type": "string", "pattern": _name_regex(t.pattern)},
                        "payload": payload,
                    },
                },
            ]
        },
    }


def _topic_channel(t: TopicDef[Any, Any], types: TopicTypes, topics_doc: dict[str, Any]) -> dict[str, Any]:
    wrapper = topics_doc["$defs"][f"{types.name}Topic"]["properties"]
    channel: dict[str, Any] = {
        "address": t.pattern,
        "title": t.pattern,
        "description": f"Topic `{t.pattern}`. {t.description}".strip(),
        "messages": {
            kind: _topic_message(types, kind, frame, _rewrite(wrapper[kind]))
            for kind, frame in (("snapshot", "SnapshotFrame"), ("event", "EventFrame"))
        },
    }
    if t.params:
        channel["parameters"] = {
            p: {"description": f"A `{p}`: matches `{PARAM_VALUE.pattern}` (no separator)."} for p in t.params
        }
    return channel


def _method_messages(m: MethodDef[Any, Any], wrapper: dict[str, Any]) -> dict[str, Any]:
    """A method's `request` and its `response`, typed by its params and result."""
    request = {
        "type": "object",
        "properties": {"method": {"const": m.name}, "params": _rewrite(wrapper["params"])},
        "required": ["method", "params"],
    }
    codes: dict[str, Any] = {
        "type": "string",
        "description": "A catalogue code (`ErrorCode`) or one of these.",
    }
    if m.errors:
        codes["examples"] = list(m.errors)
    response = {
        "type": "object",
        "properties": {
            "result": _rewrite(wrapper["result"]),
            "error": {"type": "object", "properties": {"code": codes}},
        },
    }
    return {
        f"{m.name}.request": {
            "name": "request",
            "title": f"{m.name}.request",
            "summary": f"Call `{m.name}`. {m.description}".strip(),
            "contentType": "application/json",
            "payload": {"allOf": [_ref("components", "schemas", "RequestFrame"), request]},
        },
        f"{m.name}.response": {
            "name": "response",
            "title": f"{m.name}.response",
            "summary": f"The `response` to a `{m.name}` request: its result or an error.",
            "contentType": "application/json",
            "payload": {"allOf": [_ref("components", "schemas", "ResponseFrame"), response]},
        },
    }


def asyncapi(
    topics: list[TopicDef[Any, Any]], methods: list[MethodDef[Any, Any]] | None = None
) -> dict[str, Any]:
    methods = methods or []
    documents = schemas(topics, methods)
    components = _components(documents)
    messages = {
        key: {
            "name": key,
            "title": frame,
            "summary": components[frame].get("description", ""),
            "contentType": "application/json",
            "payload": _ref("components", "schemas", frame),
        }
        for key, frame, _ in _FRAMES
    }
    channels: dict[str, Any] = {
        CONNECTION: {
            "address": None,
            "title": "The WebSocket",
            "description": "One WebSocket per client (the app mounts it, by default at `/api/realtime`), "
            "subprotocol `realtime.v1`. The server closes it with a code of `CloseCode`. "
            "The same messages also travel over the SSE transport, the WebSocket's fallback: the "
            "server's as Server-Sent Events of `GET {path}/sse` (`data: <message>`, closed by "
            '`event: close` with `{"code", "reason"}`), the client\'s as the JSON bodies of '
            "`POST {path}/sse/{connection_id}` (header `X-Realtime-Secret`). AsyncAPI 3 has no SSE "
            "binding (its `http` bindings describe one request and its response, not a stream of "
            "events answering other requests), so this channel stands for the connection on either "
            "transport; docs/protocol.md, Transports: WebSocket and SSE, says how each carries it.",
            "messages": {key: _ref("components", "messages", key) for key in messages},
        }
    }
    operations: dict[str, Any] = {
        key: {
            "action": action,
            "channel": _ref("channels", CONNECTION),
            "summary": messages[key]["summary"],
            "messages": [_ref("channels", CONNECTION, "messages", key)],
        }
        for key, _, action in _FRAMES
    }
    operations["ping"]["reply"] = {
        "channel": _ref("channels", CONNECTION),
        "messages": [_ref("channels", CONNECTION, "messages", "pong")],
    }
    operations["request"]["reply"] = {
        "channel": _ref("channels", CONNECTION),
        "messages": [_ref("channels", CONNECTION, "messages", "response")],
    }
    operations["auth"]["reply"] = {
        "channel": _ref("channels", CONNECTION),
        "messages": [
            _ref("channels", CONNECTION, "messages", "authed"),
            _ref("channels", CONNECTION, "messages", "error"),
        ],
    }
    for m in methods:
        wrapper = documents["methods"]["$defs"][f"{method_type_name(m.name)}Method"]["properties"]
        for key, message in _method_messages(m, wrapper).items():
            messages[key] = message
            channels[CONNECTION]["messages"][key] = _ref("components", "messages", key)
        operations[f"{m.name}.call"] = {
            "action": "send",
            "channel": _ref("channels", CONNECTION),
            "summary": f"Call `{m.name}`. {m.description}".strip(),
            "messages": [_ref("channels", CONNECTION, "messages", f"{m.name}.request")],
            "reply": {
                "channel": _ref("channels", CONNECTION),
                "messages": [_ref("channels", CONNECTION, "messages", f"{m.name}.response")],
            },
        }
    for t, types in zip(topics, topic_types(topics), strict=True):
        channels[types.name] = _topic_channel(t, types, documents["topics"])
        for kind in ("snapshot", "event"):
            operations[f"{types.name}.{kind}"] = {
                "action": "receive",
                "channel": _ref("channels", types.name),
                "summary": f"`{kind}` frames of topic `{t.pattern}`.",
                "messages": [_ref("channels", types.name, "messages", kind)],
            }
    return {
        "asyncapi": VERSION,
        "info": {
            "title": "aiohttp-realtime",
            "version": str(PROTOCOL_VERSION),
            "description": (__doc__ or "").split("\n\n")[1].replace("\n", " "),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"schemas": components, "messages": messages},
    }


def write_asyncapi(
    topics: list[TopicDef[Any, Any]], path: Path, methods: list[MethodDef[Any, Any]] | None = None
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asyncapi(topics, methods), indent=2, ensure_ascii=False) + "\n")
