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
