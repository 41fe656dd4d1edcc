"""The generated types: deterministic, current, narrowing, and the drift check bites.

The end-to-end test works on a clone of the committed tree (so it never touches
the working tree): a model edited without regenerating fails `scripts/check-types`
with a readable diff and the command that fixes it; regenerating and committing
makes it pass.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aiohttp_realtime.typegen import load_registry
from aiohttp_realtime.typegen_schemas import schemas

ROOT = Path(__file__).resolve().parent.parent
TSC = ROOT / "node_modules" / ".bin" / "tsc"
REGISTRY = "backend.topics:build_registry"
TS = (ROOT / "frontend-types" / "index.ts").read_text()


def _generate(root: Path) -> None:
    root.mkdir(parents=True)
    shutil.copy(ROOT / "pyproject.toml", root)  # the formatters read their settings from it
    subprocess.run(
        [
            sys.executable,
            "-m",
            "backend.realtime.typegen",
            "--registry",
            REGISTRY,
            "--root",
            str(root),
            "--json2ts",
            str(ROOT / "node_modules" / ".bin" / "json2ts"),
            "--topics-python",
            "backend/generated/topics.py",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def _tree(root: Path) -> dict[str, bytes]:
    dirs = ["schemas", "frontend-types", "backend/realtime/generated", "backend/generated"]
    files = [p for d in dirs for p in sorted((root / d).rglob("*")) if "__pycache__" not in p.parts]
    return {str(p.relative_to(root)): p.read_bytes() for p in files if p.is_file()}


def test_schemas_in_the_tree_are_current():
    registry = load_registry(REGISTRY)
    for name, schema in schemas(registry).items():
        committed = json.loads((ROOT / "schemas" / f"{name}.json").read_text())
        assert committed == schema, f"schemas/{name}.json is stale: run ./scripts/generate-types"


def test_generation_is_deterministic_and_matches_the_tree(tmp_path):
    _generate(tmp_path / "a")
    _generate(tmp_path / "b")
    first, second = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert first == second
    assert first == _tree(ROOT)
    assert not re.search(rb"20\d\d-\d\d-\d\dT\d\d:\d\d", b"".join(first.values())), "a timestamp leaked"


def test_typescript_has_no_loose_or_duplicate_types():
    assert "[k: string]: unknown" not in TS
    assert ": any" not in TS
    assert "type?:" not in TS and "op?:" not in TS, "a tag became optional: narrowing breaks"
    declared = re.findall(r"^export (?:interface|type) (\w+)", TS, flags=re.M)
    assert len(declared) == len(set(declared))
    assert not [n for n in declared if re.fullmatch(r"\w*\D1", n)], "json2ts duplicated a type (Foo1)"
    assert "export type ServerMessage = Hello | Snapshot | Event | Error | Pong;" in TS
    assert "export type ClientMessage = Subscribe | Unsubscribe | Ping;" in TS


def _interface(name: str) -> str:
    match = re.search(rf"^export interface {name} {{\n(.*?)^}}", TS, flags=re.M | re.S)
    assert match, name
    return match.group(1)


def test_optional_is_not_nullable_and_nullable_is_not_optional():
    assert "  id?: string;\n" in _interface("Pong")  # omitted when absent, never null
    assert "  topic?: string;\n" in _interface("Error")
    assert "  id?: string | null;\n" in _interface("Ping")  # a client may send null
    assert "  session_id: string | null;\n" in _interface("Terminal")  # always sent, may be null
    assert "  payload: SnapshotPayload;\n" in _interface("Snapshot")


def test_catalogues_are_documented_literal_unions():
    from aiohttp_realtime import CloseCode, ErrorCode
    from aiohttp_realtime.closecodes import CLOSE_CODE_DOCS
    from aiohttp_realtime.errors import ERROR_CODE_DOCS

    for code in ErrorCode:
        doc = re.escape(ERROR_CODE_DOCS[code].split(".")[0])
        assert re.search(rf"/\*\*\n \* {doc}.*\n \*/\nexport type ErrorCode\w+ = \"{code.value}\";", TS)
    for code in CloseCode:
        advice, meaning = CLOSE_CODE_DOCS[code]
        assert re.search(
            rf"\* {re.escape(meaning.split('.')[0])}.*Reconnect: {advice}\.\n \*/\n"
            rf"export type CloseCode\w+ = {code.value};",
            TS,
        )


def test_topic_map_lists_every_topic():
    for topic in load_registry(REGISTRY):
        key = re.escape(re.sub(r"\{\w+\}", "${string}", topic.pattern))
        snapshot = topic.snapshot.__name__
        assert re.search(rf"^  .*{key}.*: {{ snapshot: {snapshot}; event: \w+ }};$", TS, flags=re.M)


def _tsc(types: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    (tmp_path / "frontend-types").mkdir(exist_ok=True)
    (tmp_path / "frontend-types" / "index.ts").write_text(types)
    shutil.copytree(ROOT / "tests" / "ts-fixture", tmp_path / "tests" / "ts-fixture", dirs_exist_ok=True)
    return subprocess.run(
        [str(TSC), "--noEmit", "--strict", "-p", str(tmp_path / "tests" / "ts-fixture")],
        capture_output=True,
        text=True,
    )


@pytest.mark.parametrize(
    "broken",
    [
        ("an optional tag", 'type: "pong";', 'type?: "pong";'),
        (
            "a union turned loose",
            "export type ClientMessage = Subscribe | Unsubscribe | Ping;",
            "export type ClientMessage = Subscribe | Unsubscribe | Ping | { type: string };",
        ),
        ("an untyped payload", "  payload: SnapshotPayload;", "  payload: { [k: string]: unknown };"),
        ("a missing close code", "  | CloseCodeSlowConsumer;", ";"),
    ],
    ids=lambda b: b[0],
)
def test_fixture_compiles_and_fails_when_narrowing_breaks(broken, tmp_path):
    assert _tsc(TS, tmp_path).returncode == 0
    _, old, new = broken
    assert old in TS
    result = _tsc(TS.replace(old, new, 1), tmp_path)
    assert result.returncode != 0, result.stdout


def _git(clone: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=clone,
        check=True,
        capture_output=True,
        text=True,
    )


def test_drift_check_fails_on_an_unregenerated_model_change_and_passes_after(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    for shared in (".venv", "node_modules"):
        (clone / shared).symlink_to(ROOT / shared)
    env = {**os.environ, "TYPEGEN_NO_SETUP": "1"}

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["scripts/check-types"], cwd=clone, env=env, capture_output=True, text=True)

    assert check().returncode == 0, "regenerating a clean tree changed something"
    protocol = clone / "backend" / "realtime" / "protocol.py"
    protocol.write_text(
        protocol.read_text().replace(
            '    type: Literal["pong"]\n', '    type: Literal["pong"]\n    region: str\n', 1
        )
    )
    failed = check()
    assert failed.returncode == 1
    assert '+        "region": {' in failed.stderr  # the readable diff
    assert "+  region: string;" in failed.stderr
    assert "+    region: str" in failed.stderr
    assert "./scripts/generate-types" in failed.stderr  # the one command that fixes it
    subprocess.run(["scripts/generate-types"], cwd=clone, env=env, check=True, capture_output=True)
    _git(clone, "commit", "-qam", "add Pong.region")
    assert check().returncode == 0
