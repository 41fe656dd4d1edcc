"""TypeScript for the contract: pydantic-to-typescript, then a small post-step.

pydantic2ts turns every model of a module into an interface (via json2ts). It is
given a module built here that holds exactly what a client needs: the two message
unions and each topic's payload types (as `RootModel`s named after the union, since
pydantic2ts emits models only), plus the close-code catalogue. `ErrorCode` and
`CloseCode` describe themselves as titled, documented `const`s, so they come out as
literal unions whose members carry their meaning.

The post-step does only what json2ts cannot express, and is the only text edit:

1. replaces pydantic2ts's banner, and drops json2ts's "referenced by `_Master_`"
   notes (that helper model is deleted by pydantic2ts, the notes name it);
2. appends the topic map: `Topics` (name or pattern → `{snapshot, event}`),
   `TopicName`, `SnapshotOf<T>`, `EventOf<T>`, the frames typed per topic
   (`TopicSnapshot<T>`, `TopicEvent<T>`, `TypedServerMessage`), and the
   `SnapshotPayload` / `EventPayload` unions that the envelopes' `payload` fields
   name through their `tsType` (see `protocol.py`).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

from pydantic import BaseModel, RootModel
from pydantic2ts.cli.script import generate_typescript_defs

from . import protocol
from .closecodes import CloseCode, Reconnect
from .topics import TopicRegistry
from .typegen_schemas import TopicTypes, topic_types

MODULE = "_realtime_typegen_models"

BANNER = """\
/* eslint-disable */
/**
 * The realtime protocol's types, generated from the Pydantic models by
 * ./scripts/generate-types (pydantic-to-typescript + json2ts + a documented post-step
 * in backend/realtime/typegen_ts.py). Do not edit: change the models and regenerate.
 */
"""


def _root_model(name: str, tp: Any, schema: dict[str, Any] | None = None) -> type[BaseModel]:
    """A `RootModel` named `name`; with `schema`, its JSON Schema is exactly that."""
    namespace: dict[str, Any] = {"__module__": MODULE}
    if schema is not None:
        namespace["__get_pydantic_json_schema__"] = classmethod(lambda cls, _cs, _h: dict(schema))
    return types.new_class(name, (RootModel[tp],), {}, lambda ns: ns.update(namespace))


def models_module(topics: list[TopicTypes]) -> types.ModuleType:
    module = types.ModuleType(MODULE, "What pydantic2ts turns into TypeScript.")
    exported: dict[str, Any] = {
        "ClientMessage": _root_model("ClientMessage", protocol.ClientMessage),
        "ServerMessage": _root_model("ServerMessage", protocol.ServerMessage),
        "CloseCode": _root_model("CloseCode", int, CloseCode.__get_pydantic_json_schema__(None, None)),
        "Reconnect": _root_model(
            "Reconnect",
            str,
            {
                "title": "Reconnect",
                "enum": [r.value for r in Reconnect],
                "description": "What a client does after a close code "
                "(`x-reconnect` in schemas/close-codes.json).",
            },
        ),
    }
    for t in topics:
        exported[t.snapshot.__name__] = t.snapshot
        is_model = isinstance(t.event, type) and issubclass(t.event, BaseModel)
        exported[t.event_name] = t.event if is_model else _root_model(t.event_name, t.event)
    vars(module).update(exported)
    return module


def _run_pydantic2ts(topics: list[TopicTypes], json2ts: str) -> str:
    sys.modules[MODULE] = models_module(topics)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.ts"
            generate_typescript_defs(MODULE, str(out), json2ts_cmd=f"{json2ts} --additionalProperties false")
            return out.read_text()
    finally:
        del sys.modules[MODULE]


_BANNER_RE = re.compile(r"\A/\* tslint:disable \*/\n/\* eslint-disable \*/\n/\*\*\n(?:/\*.*\n)*\*/\n\n")
_MASTER_NOTE_RE = re.compile(
    r"(?: \*\n)? \* This interface was referenced by `_Master_`'s JSON-Schema\n"
    r" \* via the `definition` \"[^\"]*\"\.\n"
)


def _clean(ts: str) -> str:
    ts, banner = _BANNER_RE.subn("", ts)
    if banner != 1:
        raise RuntimeError("pydantic2ts's banner changed: update typegen_ts._BANNER_RE")
    ts = _MASTER_NOTE_RE.sub("", ts)
    return re.sub(r"/\*\*\n \*/\n", "", ts)  # comments that held only that note


def _doc(text: str, indent: str = "") -> str:
    lines = text.strip().splitlines() or [""]
    body = "".join(f"{indent} * {line}".rstrip() + "\n" for line in lines)
    return f"{indent}/**\n{body}{indent} */\n"


def _key(pattern: str) -> str:
    """A `Topics` key: the literal name, or a template literal index signature for a pattern."""
    if "{" not in pattern:
        return json.dumps(pattern)
    template = re.sub(r"\{[^}]*\}", "${string}", pattern.replace("`", "\\`"))
    return f"[topic: `{template}`]"


def topic_map(topics: list[TopicTypes]) -> str:
    entries = "".join(
        _doc(f"{t.description}\n\nPattern: `{t.pattern}`.".strip(), "  ")
        + f"  {_key(t.pattern)}: {{ snapshot: {t.snapshot.__name__}; event: {t.event_name} }};\n"
        for t in topics
    )
    return f"""
// ---------------------------------------------------------------- topic map
// Appended by the post-step of backend/realtime/typegen_ts.py: json2ts cannot express it.

/**
 * Every topic a client may subscribe to, by name (or pattern: a `{{param}}` matches any
 * value) → the payload types of its `snapshot` and `event` frames.
 */
export interface Topics {{
{entries}}}
/** A topic name a client may subscribe to. */
export type TopicName = keyof Topics;
/** The `payload` of a `snapshot` frame of topic `T`. */
export type SnapshotOf<T extends TopicName> = Topics[T]["snapshot"];
/** The `payload` of an `event` frame of topic `T`. */
export type EventOf<T extends TopicName> = Topics[T]["event"];
/** The `payload` of any `snapshot` frame: narrow with `TopicSnapshot` (compare `topic`). */
export type SnapshotPayload = Topics[TopicName]["snapshot"];
/** The `payload` of any `event` frame: narrow with `TopicEvent` (compare `topic`). */
export type EventPayload = Topics[TopicName]["event"];
/** A `snapshot` frame whose `payload` is typed by its `topic`: comparing `topic` narrows it. */
export type TopicSnapshot<T extends TopicName = TopicName> = T extends TopicName
  ? Omit<Snapshot, "topic" | "payload"> & {{ topic: T; payload: SnapshotOf<T> }}
  : never;
/** An `event` frame whose `payload` is typed by its `topic`: comparing `topic` narrows it. */
export type TopicEvent<T extends TopicName = TopicName> = T extends TopicName
  ? Omit<Event, "topic" | "payload"> & {{ topic: T; payload: EventOf<T> }}
  : never;
/** `ServerMessage` with every `snapshot` and `event` payload typed by its topic. */
export type TypedServerMessage = Exclude<ServerMessage, Snapshot | Event> | TopicSnapshot | TopicEvent;
"""


def typescript(registry: TopicRegistry, json2ts: str) -> str:
    topics = topic_types(registry)
    return BANNER + _clean(_run_pydantic2ts(topics, json2ts)) + topic_map(topics)


def write_typescript(registry: TopicRegistry, path: Path, json2ts: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(typescript(registry, json2ts))
