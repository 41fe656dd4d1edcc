"""scripts/setup's two modes, cheaply: its stamps and what each mode asks pip and npm for.

`scripts/setup --server` (what scripts/server runs) installs only what `python -m
backend` needs; plain `scripts/setup` (scripts/test and every other script) installs
everything. A real install takes tens of seconds, so these tests run the real script
in a scratch copy of the files its stamps hash, with a fake `.venv/bin/python` and a
fake `npm` that only log their arguments. The real timing of `./scripts/server` in a
fresh clone is measured by hand (README.md states it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
#: What the npm step's stamp hashes (scripts/setup's npm_files).
NPM_FILES = (
    "package.json",
    "package-lock.json",
    "frontend-types/package.json",
    "frontend-client/package.json",
)
LOGGER = '#!/bin/sh\necho "$*" >> "$FAKE_LOG"\n'


def _code_lines(script: Path) -> list[str]:
    return [line.strip() for line in script.read_text().splitlines() if not line.lstrip().startswith("#")]


@pytest.mark.parametrize("script", ["setup", "server"])
def test_the_scripts_parse(script: str) -> None:
    result = subprocess.run(["bash", "-n", str(SCRIPTS / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_server_sets_up_in_server_mode_then_runs_the_demo() -> None:
    lines = _code_lines(SCRIPTS / "server")
    setup = lines.index("scripts/setup --server")
    run = lines.index('exec .venv/bin/python -m backend "$@"')
    assert setup < run
    assert any(line.startswith("echo ") for line in lines[:setup]), "it says what it does first"
    assert any(line.startswith("echo ") for line in lines[setup:run]), "and again before it starts"


def test_only_the_server_uses_the_server_mode() -> None:
    """scripts/test and the others need the test tools: they call the full set-up."""
    for script in sorted(SCRIPTS.iterdir()):
        if script.name in {"server", "setup"} or not script.is_file():
            continue
        text = script.read_text(errors="replace")
        assert "setup --server" not in text, script.name
    assert "scripts/setup\n" in (SCRIPTS / "test").read_text()


class Sandbox:
    """A scratch copy of what scripts/setup reads, with fake python and npm."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.log = path / "fake.log"
        (path / "scripts").mkdir()
        shutil.copy2(SCRIPTS / "setup", path / "scripts" / "setup")
        (path / "backend" / "realtime").mkdir(parents=True)
        for name in ("pyproject.toml", "requirements.lock", "backend/realtime/pyproject.toml"):
            shutil.copy2(ROOT / name, path / name)
        (path / "backend" / "realtime" / "hub.py").write_text("")
        for name in NPM_FILES:
            (path / name).parent.mkdir(exist_ok=True)
            (path / name).write_text("{}\n")
        venv_bin = path / ".venv" / "bin"
        venv_bin.mkdir(parents=True)
        fake_bin = path / "fake-bin"
        fake_bin.mkdir()
        (venv_bin / "python").write_text(LOGGER.replace('echo "', 'echo "python '))
        (fake_bin / "npm").write_text(LOGGER.replace('echo "', 'mkdir -p node_modules; echo "npm '))
        for tool in (venv_bin / "python", fake_bin / "npm"):
            tool.chmod(0o755)
        self.env = {
            **os.environ,
            "PATH": f"{fake_bin}{os.pathsep}{os.environ['PATH']}",
            "PYTHON": sys.executable,
            "FAKE_LOG": str(self.log),
        }

    def setup(self, *args: str) -> tuple[list[str], str]:
        """Run scripts/setup; the pip and npm commands it ran, and what it printed."""
        before = self.log.read_text().splitlines() if self.log.exists() else []
        result = subprocess.run(
            ["bash", "scripts/setup", *args], cwd=self.path, env=self.env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr
        after = self.log.read_text().splitlines() if self.log.exists() else []
        return after[len(before) :], result.stderr

    def stamps(self) -> set[str]:
        return {p.name for p in (self.path / ".venv").glob(".setup-*")}


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return Sandbox(tmp_path)


def _installs(commands: list[str]) -> list[str]:
    return [c for c in commands if c.startswith("python -m pip")]


def test_server_mode_installs_the_server_only_and_a_full_setup_adds_the_rest(sandbox: Sandbox) -> None:
    commands, printed = sandbox.setup("--server")
    installs = _installs(commands)
    assert len(installs) == 3 and commands == installs, commands  # pip+setuptools, library, demo
    assert all("-c requirements.lock" in c for c in installs), "every step is constrained by the lock"
    assert re.search(r"editable_mode=strict -e backend/realtime\[redis\]$", installs[1]), installs[1]
    assert installs[2].endswith(" -e ."), installs[2]
    assert not any("[dev]" in c or "typegen" in c for c in installs)
    assert sandbox.stamps() == {".setup-python-server"}
    assert all(line.startswith("setup: ") for line in printed.splitlines()), printed

    assert sandbox.setup("--server")[0] == [], "a second server set-up is a no-op"

    commands, _ = sandbox.setup()  # the server-only stamp does not satisfy the full set-up
    installs = _installs(commands)
    assert any("-e backend/realtime[typegen,redis]" in c for c in installs), installs
    assert any(c.endswith("-e .[dev]") for c in installs), installs
    assert commands[-1].startswith("npm ci"), commands
    assert sandbox.stamps() == {".setup-python", ".setup-python-server"}

    assert sandbox.setup()[0] == [], "a second full set-up is a no-op"
    assert sandbox.setup("--server")[0] == [], "the full set-up covers the server"


def test_a_full_setup_first_leaves_nothing_for_the_server(sandbox: Sandbox) -> None:
    assert sandbox.setup()[0]
    assert sandbox.setup("--server")[0] == []


def test_a_changed_lock_reinstalls_in_either_mode(sandbox: Sandbox) -> None:
    sandbox.setup()
    lock = sandbox.path / "requirements.lock"
    lock.write_text(lock.read_text() + "# changed\n")
    assert len(_installs(sandbox.setup("--server")[0])) == 3
    commands = sandbox.setup()[0]
    assert any(c.endswith("-e .[dev]") for c in commands), "the full stamp is stale too"
    assert not any(c.startswith("npm") for c in commands), "npm's own stamp still holds"


def test_an_unknown_argument_is_refused(sandbox: Sandbox) -> None:
    result = subprocess.run(
        ["bash", "scripts/setup", "--sever"],
        cwd=sandbox.path,
        env=sandbox.env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "usage: scripts/setup [--server]" in result.stderr
    assert not sandbox.log.exists(), "nothing was installed"


def test_the_sandbox_has_every_file_the_npm_stamp_hashes() -> None:
    [files] = re.findall(r"^npm_files=\(([^)]*)\)", (SCRIPTS / "setup").read_text(), re.MULTILINE)
    assert tuple(files.split()) == NPM_FILES
