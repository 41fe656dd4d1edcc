"""`python -m tests.chaos [--long] [pytest arguments...]` (or `scripts/chaos`): run the
chaos suite in one process and print what each case measured as a table.

Without `--long` it runs the short form, as `./scripts/test` does; `--long` runs more
trials with longer faults (CHAOS_LONG=1, tests/chaos/profile.py). Further arguments go
to pytest, e.g. `-k late_publish` or `-x`. CHAOS_NODE_PYTHONPATH=<dir>[:<dir>] runs the
nodes on another checkout's code (tests/chaos/nodes.py). The exit status is pytest's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.chaos.profile import LONG_ENV
from tests.chaos.results import RESULTS_ENV, table

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str]) -> int:
    long = "--long" in argv
    rest = [a for a in argv if a != "--long"]
    with tempfile.TemporaryDirectory(prefix="chaos-") as directory:
        results = Path(directory) / "results.jsonl"
        env = {**os.environ, RESULTS_ENV: str(results), LONG_ENV: "1" if long else "0"}
        command = [
            sys.executable,
            "-m",
            "pytest",
            "tests/chaos",
            "-n",
            "0",
            "-p",
            "no:cacheprovider",
            "-q",
            *rest,
        ]
        code = subprocess.run(command, cwd=ROOT, env=env, check=False).returncode
        rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    print(f"\nchaos suite, {'long' if long else 'short'} form: {len(rows)} case(s) recorded\n")
    print(table(rows))
    return code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
