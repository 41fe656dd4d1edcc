"""Bounding JSON nesting *before* parsing: a few kilobytes of `[[[[...` make recursive
parsers (Python's `json`) raise `RecursionError` and cost every parser time and
memory per level. `depth_exceeds` answers with C-speed string operations for ordinary
input and, for bracket-heavy input, a scan that stops as soon as the limit is passed.
"""

from __future__ import annotations

import re

#: A JSON string (skipped whole: brackets inside it do not nest) or one bracket.
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


def depth_exceeds(text: str, limit: int) -> bool:
    """True if arrays/objects in `text` nest deeper than `limit` (for malformed input:
    if its brackets, outside strings, would)."""
    if text.count("[") + text.count("{") <= limit:
        return False  # cannot nest deeper than the number of openers
    depth = 0
    for match in _TOKEN.finditer(text):
        char = match.group()
        if char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,31}")


def safe_name(part: object) -> str | int:
    """A location in a client's JSON, fit to quote in an error: an index or a plain
    field name as is, anything else (a client's arbitrary key) as ``"?"``. Error texts
    never echo input."""
    if isinstance(part, int):
        return part
    text = str(part)
    return text if _NAME.fullmatch(text) else "?"
