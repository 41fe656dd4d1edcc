"""Pydantic models generated back from the published JSON Schema (datamodel-code-generator).

A consumer built on these, and not on the server's own models, proves the schema
alone is enough: the library's Python client (`aiohttp_realtime.client`) is one.
`extra_fields="ignore"`: a consumer keeps working when the server adds a field.
"""

from __future__ import annotations

from pathlib import Path

from datamodel_code_generator import InputFileType, PythonVersion, generate
from datamodel_code_generator.enums import DataModelType
from datamodel_code_generator.format import Formatter


def write_python_models(schema: Path, output: Path, *, header: str) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
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
