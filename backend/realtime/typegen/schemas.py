"""JSON Schema for the published contract (`schemas/`), and the topic naming the
TypeScript step shares.

Field titles are dropped (json2ts would turn each into a bogus alias such as
`Type1`); model titles stay, they name the types. Output is stable: pydantic emits
definitions in a fixed order and nothing here reads the clock.
"""

from __future__ import annotations

import json
import re
import sys
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode

from ..closecodes import CloseCode
from ..errors import ErrorCode
from ..methods import MethodDef
from ..protocol import ClientMessage, ServerMessage
from ..topics import TopicDef

DIALECT = "https://json-schema.org/draft/2020-12/schema"


class NoFieldTitles(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


@dataclass(frozen=True)
class TopicTypes:
    """A topic's pattern and its payload types, with the names they are published under."""

    pattern: str
    name: str  # PascalCase of the pattern without its parameters: "SessionsActivity"
    description: str
    snapshot: type[BaseModel]
    event: Any
    event_name: str


def _pascal(pattern: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", re.sub(r"\{[^}]*\}", "", pattern))
    return "".join(w[:1].upper() + w[1:] for w in words if w)


def _alias_name(tp: Any) -> str | None:
    """The module-level name an annotated union was assigned to (`SessionsEvent`), found
    in the modules that define its members; None if it has none."""
    members = [
        m
        for m in typing.get_args(typing.get_args(tp)[0] if hasattr(tp, "__metadata__") else tp)
        if isinstance(m, type)
    ]
    for module in dict.fromkeys(sys.modules.get(m.__module__) for m in members):
        for name, value in vars(module or object).items():
            if value is tp and not name.startswith("_"):
                return name
    return None


def topic_types(topics: Iterable[TopicDef[Any, Any]]) -> list[TopicTypes]:
    result = []
    for topic in topics:
        name = _pascal(topic.pattern)
        event = topic.event
        if isinstance(event, type) and issubclass(event, BaseModel):
            event_name = event.__name__
        else:
            event_name = _alias_name(event) or f"{name}Event"
        result.append(TopicTypes(topic.pattern, name, topic.description, topic.snapshot, event, event_name))
    names = [t.name for t in result]
    if len(set(names)) != len(names):
        raise ValueError(f"topic patterns give clashing type names: {names}")
    return result


def _drop_null_defaults(node: Any) -> Any:
    """`default: null` on a field whose schema does not allow null (an optional field
    omitted from the wire when None) only confuses consumers."""
    if isinstance(node, dict):
        if node.get("default", ...) is None and node.get("type") not in (None, "null"):
            node = {k: v for k, v in node.items() if k != "default"}
        return {k: _drop_null_defaults(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_drop_null_defaults(v) for v in node]
    return node


def _document(title: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in schema.items() if k not in ("title", "description")}
    document: dict[str, Any] = _drop_null_defaults(
        {"$schema": DIALECT, "title": title, "description": description, **body}
    )
    return document


def message_schema(tp: Any, mode: JsonSchemaMode) -> dict[str, Any]:
    schema: dict[str, Any] = TypeAdapter(tp).json_schema(mode=mode, schema_generator=NoFieldTitles)
    return schema


def _closed_map(properties: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly these properties, its definitions sorted by name."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
        "$defs": dict(sorted(defs.items())),
    }


def topics_schema(topics: list[TopicTypes]) -> dict[str, Any]:
    """One document: `properties` maps each topic pattern to its `{snapshot, event}`
    payload schemas, all of them in `$defs` under their model or alias names."""
    inputs: list[tuple[tuple[str, str], JsonSchemaMode, TypeAdapter[Any]]] = [
        ((kind, t.pattern), "serialization", TypeAdapter(tp))
        for t in topics
        for kind, tp in (("snapshot", t.snapshot), ("event", t.event))
    ]
    refs, top = TypeAdapter.json_schemas(inputs, schema_generator=NoFieldTitles) if inputs else ({}, {})
    defs: dict[str, Any] = dict(top.get("$defs", {}))
    properties = {}
    for t in topics:
        event = refs[(("event", t.pattern), "serialization")]
        if "$ref" not in event:  # an inline union: publish it under its alias name
            if t.event_name in defs:
                raise ValueError(f"{t.event_name} names both a model and a union")
            defs[t.event_name] = {"title": t.event_name, **event}
            event = {"$ref": f"#/$defs/{t.event_name}"}
        defs[f"{t.name}Topic"] = {
            "title": f"{t.name}Topic",
            "description": f"Topic `{t.pattern}`. {t.description}".strip(),
            "type": "object",
            "properties": {"snapshot": refs[(("snapshot", t.pattern), "serialization")], "event": event},
            "required": ["snapshot", "event"],
            "additionalProperties": False,
        }
        properties[t.pattern] = {"$ref": f"#/$defs/{t.name}Topic"}
    return _closed_map(properties, defs)


def method_type_name(name: str) -> str:
    """`sessions.create` → `SessionsCreate` (the method map's entry is `SessionsCreateMethod`)."""
    return _pascal(name)


def methods_schema(methods: list[MethodDef[Any, Any]]) -> dict[str, Any]:
    """One document: `properties` maps each method name to its `{params, result, errors}`:
    params in validation mode (what the server accepts), results in serialization mode
    (what it sends), errors the codes the method declares beside the catalogue's."""
    names = [method_type_name(m.name) for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"method names give clashing type names: {names}")
    sides: tuple[tuple[str, JsonSchemaMode], ...] = (("params", "validation"), ("result", "serialization"))
    inputs: list[tuple[tuple[str, str], JsonSchemaMode, TypeAdapter[Any]]] = [
        ((kind, m.name), mode, TypeAdapter(m.params if kind == "params" else m.result))
        for m in methods
        for kind, mode in sides
    ]
    refs, top = TypeAdapter.json_schemas(inputs, schema_generator=NoFieldTitles) if inputs else ({}, {})
    defs: dict[str, Any] = dict(top.get("$defs", {}))
    properties = {}
    for m, name in zip(methods, names, strict=True):
        errors: dict[str, Any] = (
            {"enum": list(m.errors), "description": " ".join(f"`{c}`: {d}" for c, d in m.errors.items())}
            if m.errors
            else {"not": {}, "description": "No codes of its own: only the catalogue's."}
        )
        defs[f"{name}Method"] = {
            "title": f"{name}Method",
            "description": f"Method `{m.name}`. {m.description}".strip(),
            "type": "object",
            "properties": {
                "params": refs[(("params", m.name), "validation")],
                "result": refs[(("result", m.name), "serialization")],
                "errors": errors,
            },
            "required": ["params", "result", "errors"],
            "additionalProperties": False,
        }
        properties[m.name] = {"$ref": f"#/$defs/{name}Method"}
    return _closed_map(properties, defs)


def schemas(
    topics: Iterable[TopicDef[Any, Any]], methods: Iterable[MethodDef[Any, Any]] = ()
) -> dict[str, dict[str, Any]]:
    error_codes = ErrorCode.__get_pydantic_json_schema__(None, None)
    close_codes = CloseCode.__get_pydantic_json_schema__(None, None)
    return {
        "client-message": _document(
            "ClientMessage",
            "A frame a client sends (validation mode: what the server accepts).",
            message_schema(ClientMessage, "validation"),
        ),
        "server-message": _document(
            "ServerMessage",
            "A frame the server sends (serialization mode: exactly what is sent).",
            message_schema(ServerMessage, "serialization"),
        ),
        "topics": _document(
            "Topics",
            "Each topic pattern's snapshot and event payload types "
            "(the `payload` of `snapshot` and `event` frames).",
            topics_schema(topic_types(topics)),
        ),
        "methods": _document(
            "Methods",
            "Each method's params, result and declared error codes (the `params` of a "
            "`request` frame, the `result` of its `response`, and the codes its `error` may "
            "carry beside the catalogue's).",
            methods_schema(list(methods)),
        ),
        "error-codes": _document("ErrorCode", error_codes["description"], error_codes),
        "close-codes": _document("CloseCode", close_codes["description"], close_codes),
    }


def write_schemas(
    topics: Iterable[TopicDef[Any, Any]], directory: Path, methods: Iterable[MethodDef[Any, Any]] = ()
) -> dict[str, Path]:
    """Write every schema; remove stale `*.json` so a dropped schema shows in the diff."""
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for name, schema in schemas(topics, methods).items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
        written[name] = path
    for stale in set(directory.glob("*.json")) - set(written.values()):
        stale.unlink()
    return written
