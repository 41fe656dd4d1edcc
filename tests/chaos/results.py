"""What each chaos case measured, and whether it met its criteria.

A case collects its numbers and its criteria in a `Report` and calls `finish()`, which
records one row and then fails the test listing every criterion missed (all of them,
with their numbers, not only the first). Rows go to the file named by CHAOS_RESULTS
(one JSON object per line) when it is set: `python -m tests.chaos` prints them as a
table."""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_ENV = "CHAOS_RESULTS"


@dataclass
class Report:
    case: str
    title: str
    numbers: dict[str, Any] = field(default_factory=dict)
    missed: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def note(self, **numbers: Any) -> None:
        self.numbers.update(numbers)

    def expect(self, ok: bool, criterion: str) -> bool:
        """A criterion: `criterion` says what was expected and what was seen."""
        if not ok:
            self.missed.append(criterion)
        return ok

    def finish(self) -> None:
        row = {
            "case": self.case,
            "title": self.title,
            "passed": not self.missed,
            "seconds": round(time.monotonic() - self.started, 1),
            "numbers": self.numbers,
            "missed": self.missed,
        }
        path = os.environ.get(RESULTS_ENV)
        if path:
            with Path(path).open("a") as out:
                out.write(json.dumps(row, default=str) + "\n")
        if self.missed:
            numbers = ", ".join(f"{k}={v}" for k, v in self.numbers.items())
            lines = "\n  - ".join(self.missed)
            raise AssertionError(f"{self.case} ({self.title}) missed:\n  - {lines}\n  numbers: {numbers}")


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as a plain-text table: case, result, seconds and numbers on one line,
    then one line per criterion missed."""
    cells = [("case", "result", "s", "numbers")]
    for row in rows:
        numbers = ", ".join(f"{k}={v}" for k, v in row["numbers"].items())
        cells.append((row["case"], "pass" if row["passed"] else "FAIL", str(row["seconds"]), numbers))
    widths = [max(len(c[i]) for c in cells) for i in range(3)]
    out = []
    for i, line in enumerate(cells):
        out.append("  ".join([*(cell.ljust(widths[j]) for j, cell in enumerate(line[:3])), line[3]]))
        if i:
            out += [f"{' ' * (widths[0] + 2)}missed: {_cut(m)}" for m in rows[i - 1]["missed"]]
    return "\n".join(out)


def _cut(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
