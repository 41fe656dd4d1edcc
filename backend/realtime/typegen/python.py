"""Pydantic models generated back from the published JSON Schema (datamodel-code-generator).

A consumer built on these, and not on the server's own models, proves the schema
alone is enough: the library's Python client (`aiohttp_realtime.client`) is one.
`extra_fields="ignore"`: a consumer keeps working when the server adds a field.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from datamodel_code_generator import InputFileType, PythonVersion, generate
from datamodel_code_generator.enums import DataModelType
from datamodel_code_generator.format import Formatter


def _optional_not_nullable(node: Any) -> Any:
    """An optional property `anyOf: [X, null]` with `default: null` as just `X`, not required.

    datamodel-code-generator turns the first form, when X has constraints (a bounded
    string), into a `RootModel` whose root defaults to None, which pydantic refuses. For
    a consumer the two mean the same: the field may be left out (`= None`, and
    `exclude_none` leaves it out of what it sends).
    """
    if isinstance(node, list):
        return [_optional_not_nullable(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _optional_not_nullable(v) for k, v in node.items()}
    properties, required = node.get("properties"), set(node.get("required", ()))
    if isinstance(properties, dict):
        for name, prop in list(properties.items()):
            branches = prop.get("anyOf") if isinstance(prop, dict) else None
            if name in required or prop.get("default", ...) is not None or not isinstance(branches, list):
                continue
            rest = [b for b in branches if b != {"type": "null"}]
            if len(rest) == 1 and len(branches) == 2:
                extra = {k: v for k, v in prop.items() if k not in ("anyOf", "default")}
                properties[name] = {**rest[0], **extra}
    return node


def write_python_models(schema: Path, output: Path, *, header: str) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / schema.name
        source.write_text(json.dumps(_optional_not_nullable(json.loads(schema.read_text()))))
        _generate(source, output, header=header)


def _generate(schema: Path, output: Path, *, header: str) -> None:
    generate(
        schema,
        input_file_type=InputFileType.JsonSchema,
        output=output,
        output_model_type=DataModelType.PydanticV2BaseModel,
        target_python_version=PythonVersion.PY_311,
        disable_timestamp=True,
        use_annotated=True,
        use_union_operator=True,
        use_standard_collections=True,
        use_schema_description=True,
        use_field_description=True,
        field_constraints=True,
        collapse_root_models=True,
        extra_fields="ignore",
        # Its own formatter, with a fixed width: otherwise it reads the line length of
        # whatever pyproject.toml lies above the output, and output would depend on where
        # it is written (the drift check generates into a temporary directory).
        formatters=[Formatter.BUILTIN],
        builtin_format_line_length=100,
        custom_file_header=header,
    )
