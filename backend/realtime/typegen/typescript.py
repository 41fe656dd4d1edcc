"""TypeScript for the contract: pydantic-to-typescript, then a small post-step.

Three files, so that protocol and application types never mix:

- `protocol.ts`: the frames (`ClientMessage`, `ServerMessage` and their members)
  from pydantic2ts, plus the two catalogues emitted here from the Python
  catalogues as runtime `as const` objects with a type of the same name
  (`ErrorCode.UNKNOWN_TOPIC`, `type ErrorCode`), and the reconnect advice per
  close code as data (`RECONNECT_ADVICE`). The same for every app.
- `app.ts`: one app's topic payload types and method params/results from
  pydantic2ts, plus the topic map (`Topics`), the frames typed per topic
  (`TopicSnapshot<T>`, `TopicEvent<T>`, `TypedServerMessage`) and the method map
  (`Methods`, `ParamsOf<M>`, `ResultOf<M>`), which json2ts cannot express.
- `index.ts`: re-exports both.

The post-step's only text edits of json2ts output: replace pydantic2ts's banner,
drop json2ts's notes naming the `_Master_` helper model pydantic2ts deletes, and
drop the alias json2ts declares for `ErrorFrame.code`'s `tsType` (it would read
`export type ErrorCode = ErrorCode;`; the catalogue section declares the name).
"""

from __future__ import annotations

import json
import re
import sys
import tempfile
import types
from collections.abc import Iterable
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, RootModel
from pydantic2ts.cli.script import generate_typescript_defs

from .. import protocol
from ..closecodes import CLOSE_CODE_DOCS, CloseCode, Reconnect
from ..errors import ERROR_CODE_DOCS, ErrorCode
from ..methods import MethodDef
from ..topics import TopicDef
from .schemas import TopicTypes, topic_types

MODULE = "_aiohttp_realtime_typegen_models"
GENERATOR = "python -m aiohttp_realtime.typegen"


def _banner(what: str) -> str:
    return f"""\
/* eslint-disable */
/**
 * {what}
 * Generated from the Pydantic models by `{GENERATOR}` (pydantic-to-typescript,
 * json2ts and a documented post-step). Do not edit: change the models and regenerate.
 */
"""


def _root_model(name: str, tp: Any) -> type[BaseModel]:
    """A `RootModel` named `name` (pydantic2ts emits models only, never bare unions)."""
    namespace: dict[str, Any] = {"__module__": MODULE}
    return types.new_class(name, (RootModel[tp],), {}, lambda ns: ns.update(namespace))


def _run_pydantic2ts(exported: dict[str, Any], json2ts: str) -> str:
    module = types.ModuleType(MODULE, "What pydantic2ts turns into TypeScript.")
    vars(module).update(exported)
    sys.modules[MODULE] = module
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "out.ts"
            generate_typescript_defs(MODULE, str(out), json2ts_cmd=f"{json2ts} --additionalProperties false")
            return _clean(out.read_text())
    finally:
        del sys.modules[MODULE]


_BANNER_RE = re.compile(r"\A/\* tslint:disable \*/\n/\* eslint-disable \*/\n/\*\*\n(?:/\*.*\n)*\*/\n\n")
_MASTER_NOTE_RE = re.compile(
    r"(?: \*\n)? \* This interface was referenced by `_Master_`'s JSON-Schema\n"
    r" \* via the `definition` \"[^\"]*\"\.\n"
)


_SELF_ALIAS_RE = re.compile(r"(?:/\*\*\n(?: \*.*\n)* \*/\n)?export type (\w+) = \1;\n")


def _clean(ts: str) -> str:
    ts, banner = _BANNER_RE.subn("", ts)
    if banner != 1:
        raise RuntimeError("pydantic2ts's banner changed: update typegen.typescript._BANNER_RE")
    ts = _MASTER_NOTE_RE.sub("", ts)
    ts = _SELF_ALIAS_RE.sub("", ts)
    return re.sub(r"/\*\*\n \*/\n", "", ts)  # comments that held only that note


def _doc(text: str, indent: str = "") -> str:
    lines = text.strip().splitlines() or [""]
    body = "".join(f"{indent} * {line}".rstrip() + "\n" for line in lines)
    return f"{indent}/**\n{body}{indent} */\n"


def _catalogue(name: str, description: str, members: Iterable[tuple[Enum, str]]) -> str:
    """`export const Name = {MEMBER: value, …} as const` and its value union type."""
    entries = "".join(_doc(doc, "  ") + f"  {m.name}: {json.dumps(m.value)},\n" for m, doc in members)
    return (
        _doc(description)
        + f"export const {name} = {{\n{entries}}} as const;\n"
        + _doc(f"One of `{name}`'s values.")
        + f"export type {name} = (typeof {name})[keyof typeof {name}];\n"
    )


RECONNECT_DOC = (
    "What a client does after a close: reconnect `now` (with a little jitter), with `backoff`,\n"
    "`never` (something must change first), or `new_token` (get a new token from your\n"
    "provider, then reconnect at once). Whatever the advice, a reconnect resyncs from fresh\n"
    "snapshots: there is no replay."
)


def catalogues() -> str:
    """The error and close-code catalogues and the reconnect advice, as TypeScript data."""
    errors = _catalogue(
        "ErrorCode",
        "The code of an `error` frame. Branch on it, never on `message`.",
        ((c, ERROR_CODE_DOCS[c]) for c in ErrorCode),
    )
    closes = _catalogue(
        "CloseCode",
        "A WebSocket close code the server sends. Codes not listed here (including 1006,\n"
        "seen locally on a dropped connection): reconnect with backoff.",
        ((c, f"{CLOSE_CODE_DOCS[c][1]} Reconnect: {CLOSE_CODE_DOCS[c][0]}.") for c in CloseCode),
    )
    reconnect = " | ".join(json.dumps(r.value) for r in Reconnect)
    advice = "".join(f"  {c.value}: {json.dumps(CLOSE_CODE_DOCS[c][0].value)},\n" for c in CloseCode)
    return (
        "\n// ---------------------------------------------------------------- catalogues\n"
        "// Emitted by the post-step from the Python catalogues (errors.py, closecodes.py).\n\n"
        + errors
        + "\n"
        + closes
        + "\n"
        + _doc(RECONNECT_DOC)
        + f"export type Reconnect = {reconnect};\n\n"
        + _doc("The server's advice for each code of its catalogue (`x-reconnect` in close-codes.json).")
        + f"export const RECONNECT_ADVICE: {{ readonly [C in CloseCode]: Reconnect }} = {{\n{advice}}};\n\n"
        + _doc("The protocol version a server announces in `hello.protocol`.")
        + f"export const PROTOCOL_VERSION = {protocol.PROTOCOL_VERSION};\n"
    )


def protocol_typescript(json2ts: str) -> str:
    exported = {
        "ClientMessage": _root_model("ClientMessage", protocol.ClientMessage),
        "ServerMessage": _root_model("ServerMessage", protocol.ServerMessage),
    }
    return _banner("The realtime protocol: frames and catalogues, the same for every app.") + (
        _run_pydantic2ts(exported, json2ts) + catalogues()
    )


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
// Emitted by the post-step (aiohttp_realtime.typegen.typescript): json2ts cannot express it.

/**
 * Every topic a client may subscribe to, by name (or pattern: a `{{param}}` matches any
 * value) → the payload types of its `snapshot` and `event` frames. Give it to the
 * client as its type parameter: `new RealtimeClient<Topics>(…)`.
 */
export type Topics = {{
{entries}}};
/** A topic name a client may subscribe to. */
export type TopicName = keyof Topics;
/** The `payload` of a `snapshot` frame of topic `T`. */
export type SnapshotOf<T extends TopicName> = Topics[T]["snapshot"];
/** The `payload` of an `event` frame of topic `T`. */
export type EventOf<T extends TopicName> = Topics[T]["event"];
/** A `snapshot` frame whose `payload` is typed by its `topic`: comparing `topic` narrows it. */
export type TopicSnapshot<T extends TopicName = TopicName> = T extends TopicName
  ? Omit<SnapshotFrame, "topic" | "payload"> & {{ topic: T; payload: SnapshotOf<T> }}
  : never;
/** An `event` frame whose `payload` is typed by its `topic`: comparing `topic` narrows it. */
export type TopicEvent<T extends TopicName = TopicName> = T extends TopicName
  ? Omit<EventFrame, "topic" | "payload"> & {{ topic: T; payload: EventOf<T> }}
  : never;
/** `ServerMessage` with every `snapshot` and `event` payload typed by its topic. */
export type TypedServerMessage =
  | Exclude<ServerMessage, SnapshotFrame | EventFrame>
  | TopicSnapshot
  | TopicEvent;
"""


def method_map(methods: list[MethodDef[Any, Any]]) -> str:
    def entry(m: MethodDef[Any, Any]) -> str:
        errors = " | ".join(json.dumps(code) for code in m.errors) or "never"
        doc = m.description
        if m.errors:
            doc += "\n\nErrors of its own: " + " ".join(f"`{c}`: {d}" for c, d in m.errors.items())
        return _doc(doc.strip() or f"Method `{m.name}`.", "  ") + (
            f"  {json.dumps(m.name)}: {{ params: {m.params.__name__}; result: {m.result.__name__};"
            f" errors: {errors} }};\n"
        )

    entries = "".join(entry(m) for m in methods)
    return f"""
// ---------------------------------------------------------------- method map
// Emitted by the post-step (aiohttp_realtime.typegen.typescript).

/**
 * Every method a client may call with a `request` frame → its params, its result and
 * the error codes it declares (beside the catalogue's `ErrorCode`). Give it to the
 * client as its second type parameter: `new RealtimeClient<Topics, Methods>(…)`.
 */
export type Methods = {{
{entries}}};
/** A method a client may call. */
export type MethodName = keyof Methods;
/** The `params` of a `request` for method `M`. */
export type ParamsOf<M extends MethodName> = Methods[M]["params"];
/** The `result` of a successful `response` to method `M`. */
export type ResultOf<M extends MethodName> = Methods[M]["result"];
/** The error codes method `M` declares (its responses may also carry any `ErrorCode`). */
export type MethodErrorOf<M extends MethodName> = Methods[M]["errors"];
"""


def app_typescript(
    topics: list[TopicTypes], json2ts: str, methods: list[MethodDef[Any, Any]] | None = None
) -> str:
    methods = methods or []
    exported: dict[str, Any] = {}

    def export(name: str, tp: Any) -> None:
        if exported.setdefault(name, tp) is not tp:
            raise ValueError(f"two different types are both named {name}: rename one")

    for t in topics:
        export(t.snapshot.__name__, t.snapshot)
        is_model = isinstance(t.event, type) and issubclass(t.event, BaseModel)
        export(t.event_name, t.event if is_model else _root_model(t.event_name, t.event))
    for m in methods:
        export(m.params.__name__, m.params)
        export(m.result.__name__, m.result)
    imports = 'import type { EventFrame, ServerMessage, SnapshotFrame } from "./protocol.js";\n\n'
    body = _run_pydantic2ts(exported, json2ts) if exported else ""
    return _banner("This app's topics and methods: their types, the topic map and the method map.") + (
        imports + body + topic_map(topics) + method_map(methods)
    )


INDEX = (
    _banner("The realtime protocol and this app's topics.")
    + 'export * from "./protocol.js";\nexport * from "./app.js";\n'
)


def write_typescript(
    topics: Iterable[TopicDef[Any, Any]],
    directory: Path,
    json2ts: str,
    methods: Iterable[MethodDef[Any, Any]] = (),
) -> None:
    """`protocol.ts`, `app.ts` and `index.ts` in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "protocol.ts").write_text(protocol_typescript(json2ts))
    (directory / "app.ts").write_text(app_typescript(topic_types(topics), json2ts, list(methods)))
    (directory / "index.ts").write_text(INDEX)


def write_protocol_typescript(path: Path, json2ts: str) -> None:
    """Only `protocol.ts`, e.g. for a client library that knows no app."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(protocol_typescript(json2ts))
