"""How a catalogue of codes (`ErrorCode`, `CloseCode`) describes itself in JSON Schema.

One `const` per member, titled with the member's name and carrying its meaning:
JSON Schema consumers read the documentation, datamodel-code-generator names the
Python enum members after the titles (`ErrorCode.UNKNOWN_TOPIC`), and the
TypeScript step emits the same names as a runtime `as const` object.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import Enum
from typing import Any


def catalogue_schema(
    title: str, description: str, members: Iterable[tuple[Enum, str, dict[str, Any]]]
) -> dict[str, Any]:
    """`members`: (member, its meaning, extra keywords such as `x-reconnect`)."""
    return {
        "title": title,
        "description": description,
        "oneOf": [
            {"const": member.value, "title": member.name, "description": doc, **extra}
            for member, doc, extra in members
        ],
    }
