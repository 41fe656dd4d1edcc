"""The published contract, generated from the Pydantic models: JSON Schema, TypeScript, Python.

    python -m aiohttp_realtime.typegen --topics myapp.topics:TOPICS \\
        [--methods myapp.methods:METHODS] \\
        --schemas schemas/ --typescript src/realtime/ [--python-models myapp/realtime_models.py]

Inputs are the library's protocol models and catalogues, and one app's topic
declarations (`TopicDef`s, or a `TopicRegistry`) and method declarations
(`MethodDef`s, or a `MethodRegistry`); no snapshot provider or handler is called
and nothing is written but the paths given. Every output is deterministic (no
timestamps, stable order), so a drift check can regenerate and compare.

- `--schemas DIR`: `client-message.json` (validation mode: what the server
  accepts), `server-message.json` (serialization mode: exactly what it sends),
  `topics.json` (each topic pattern → its snapshot and event payload schemas),
  `methods.json` (each method → its params, result and declared error codes),
  `error-codes.json`, `close-codes.json`.
- `--typescript DIR`: `protocol.ts`, `app.ts` (this app's payloads, topic map and
  method map) and `index.ts`; needs json2ts (npm `json-schema-to-typescript`).
- `--python-models FILE`: Pydantic models of the app's payloads, generated back
  from `topics.json` (datamodel-code-generator).
- `--python-methods FILE`: the same for the methods' params and results, from
  `methods.json` (what the Python client's `request` is typed with).
- `--protocol-typescript FILE`, `--protocol-python DIR`: the protocol alone, for a
  client library that knows no app (this project's own clients use them).
- `--asyncapi FILE`: an AsyncAPI 3.0 document of the protocol and the app's topics
  (one channel per topic pattern), built from the same JSON Schemas.
"""

from __future__ import annotations

import importlib
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from ..methods import MethodDef, MethodRegistry
from ..topics import TopicDef, TopicRegistry

__all__ = ["Outputs", "generate", "load_methods", "load_topics"]


def _load(spec: str, example: str, registry: type, item: type) -> list[Any]:
    """`module:attr` naming a `registry` or an iterable of `item`s."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{spec!r}: expected MODULE:ATTRIBUTE, e.g. {example}")
    obj: Any = getattr(importlib.import_module(module_name), attr)
    ok = isinstance(obj, (registry, Iterable))
    items: list[Any] | None = list(cast("Iterable[Any]", obj)) if ok else None
    if items is None or not all(isinstance(i, item) for i in items):
        what = f"a {registry.__name__} or {item.__name__}s"
        raise ValueError(f"{spec}: expected {what}, got {type(obj).__name__}")
    return items


def load_topics(spec: str) -> list[TopicDef[Any, Any]]:
    """`module:attr` naming a `TopicRegistry` or an iterable of `TopicDef`s."""
    return _load(spec, "myapp.topics:TOPICS", TopicRegistry, TopicDef)


def load_methods(spec: str) -> list[MethodDef[Any, Any]]:
    """`module:attr` naming a `MethodRegistry` or an iterable of `MethodDef`s."""
    return _load(spec, "myapp.methods:METHODS", MethodRegistry, MethodDef)


@dataclass(frozen=True)
class Outputs:
    schemas: Path | None = None
    typescript: Path | None = None
    python_models: Path | None = None
    protocol_typescript: Path | None = None
    protocol_python: Path | None = None
    asyncapi: Path | None = None
    python_methods: Path | None = None


def find_json2ts(given: str | None) -> str:
    """The json2ts command: as given, else ./node_modules/.bin/json2ts, else on PATH."""
    if given:
        return given
    local = Path("node_modules/.bin/json2ts")
    found = str(local.resolve()) if local.exists() else shutil.which("json2ts")
    if found is None:
        raise FileNotFoundError(
            "json2ts not found: `npm install --save-dev json-schema-to-typescript@16`, or pass --json2ts PATH"
        )
    return found


def generate(
    topics: Iterable[TopicDef[Any, Any]],
    outputs: Outputs,
    *,
    json2ts: str | None = None,
    methods: Iterable[MethodDef[Any, Any]] = (),
) -> None:
    """Write every output that `outputs` names (the others are skipped)."""
    from .schemas import write_schemas

    topics = list(topics)
    methods = list(methods)
    with tempfile.TemporaryDirectory() as tmp:
        schema_dir = outputs.schemas or Path(tmp)
        written = write_schemas(topics, schema_dir, methods)
        if outputs.asyncapi:  # after the schemas: their directory drops unknown *.json
            from .asyncapi import write_asyncapi

            write_asyncapi(topics, outputs.asyncapi, methods)
        if outputs.typescript or outputs.protocol_typescript:
            from .typescript import write_protocol_typescript, write_typescript

            command = find_json2ts(json2ts)
            if outputs.typescript:
                write_typescript(topics, outputs.typescript, command, methods)
            if outputs.protocol_typescript:
                write_protocol_typescript(outputs.protocol_typescript, command)
        if outputs.python_models or outputs.protocol_python or outputs.python_methods:
            from .python import write_python_models

            def header(name: str) -> str:
                return f"# Generated from {name} by python -m aiohttp_realtime.typegen. Do not edit."

            if outputs.python_models:
                write_python_models(written["topics"], outputs.python_models, header=header("topics.json"))
            if outputs.python_methods:
                target = outputs.python_methods
                write_python_models(written["methods"], target, header=header("methods.json"))
            if outputs.protocol_python:
                init = outputs.protocol_python / "__init__.py"
                for name in ("client-message", "server-message"):
                    target = outputs.protocol_python / f"{name.replace('-', '_')}.py"
                    write_python_models(written[name], target, header=header(f"{name}.json"))
                init.write_text('"""Generated by python -m aiohttp_realtime.typegen. Do not edit."""\n')
