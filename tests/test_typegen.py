"""The generated types: deterministic, current, clean, narrowing, and the drift check bites.

The end-to-end drift test works on a copy of the working tree (never the tree itself):
a model edited without regenerating fails `scripts/check-types` with a readable diff
and the command that fixes it; running that command makes it pass, with no commit.
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

from aiohttp_realtime import CloseCode, ErrorCode
from aiohttp_realtime.closecodes import CLOSE_CODE_DOCS
from aiohttp_realtime.errors import ERROR_CODE_DOCS
from aiohttp_realtime.typegen import load_topics
from aiohttp_realtime.typegen.schemas import schemas

ROOT = Path(__file__).resolve().parent.parent
TSC = ROOT / "node_modules" / ".bin" / "tsc"
TOPICS = "backend.topics:TOPICS"
PROTOCOL_TS = (ROOT / "frontend-types" / "protocol.ts").read_text()
APP_TS = (ROOT / "frontend-types" / "app.ts").read_text()
#: What scripts/generate-types writes, relative to its output root.
GENERATED = [
    "schemas",
    "frontend-types/protocol.ts",
    "frontend-types/app.ts",
    "frontend-types/index.ts",
    "frontend-client/src/protocol.ts",
    "backend/generated/topics.py",
    "backend/realtime/generated",
]


def _generate(root: Path) -> dict[str, bytes]:
    env = {**os.environ, "TYPEGEN_NO_SETUP": "1"}
    subprocess.run(
        [str(ROOT / "scripts" / "generate-types"), str(root)], env=env, check=True, capture_output=True
    )
    return _tree(root)


def _tree(root: Path) -> dict[str, bytes]:
    files: list[Path] = []
    for name in GENERATED:
        path = root / name
        files += [p for p in sorted(path.rglob("*")) if p.is_file()] if path.is_dir() else [path]
    return {str(p.relative_to(root)): p.read_bytes() for p in files if "__pycache__" not in p.parts}


def test_schemas_in_the_tree_are_current() -> None:
    for name, schema in schemas(load_topics(TOPICS)).items():
        committed = json.loads((ROOT / "schemas" / f"{name}.json").read_text())
        assert committed == schema, f"schemas/{name}.json is stale: run ./scripts/generate-types"


def test_generation_is_deterministic_and_matches_the_tree(tmp_path: Path) -> None:
    first, second = _generate(tmp_path / "a"), _generate(tmp_path / "b")
    assert first == second
    assert first == _tree(ROOT)
    assert not re.search(rb"20\d\d-\d\d-\d\dT\d\d:\d\d", b"".join(first.values())), "a timestamp leaked"


def test_load_topics_refuses_what_is_not_topics() -> None:
    assert next(t.pattern for t in load_topics(TOPICS)) == "sessions.state"
    with pytest.raises(ValueError, match="MODULE:ATTRIBUTE"):
        load_topics("backend.topics")
    with pytest.raises(ValueError, match="TopicRegistry or TopicDefs"):
        load_topics("backend.topics:build_registry")  # a factory is not topics: no fake arguments


def test_the_cli_writes_only_the_paths_it_is_given(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "aiohttp_realtime.typegen",
            "--topics",
            TOPICS,
            "--schemas",
            str(tmp_path / "s"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(
        [
            "s",
            "client-message.json",
            "server-message.json",
            "topics.json",
            "error-codes.json",
            "close-codes.json",
        ]
    )
    missing = subprocess.run(
        [sys.executable, "-m", "aiohttp_realtime.typegen", "--topics", "nope.module:X", "--schemas", "x"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "typegen: No module named 'nope'" in missing.stderr
    assert not (tmp_path / "x").exists()


def test_typescript_has_no_loose_shadowing_or_duplicate_types() -> None:
    for ts in (PROTOCOL_TS, APP_TS):
        assert "[k: string]: unknown" not in ts
        assert ": any" not in ts
        assert "type?:" not in ts and "op?:" not in ts, "a tag became optional: narrowing breaks"
        declared = re.findall(r"^export (?:interface|type|const) (\w+)", ts, flags=re.M)
        assert not [n for n in declared if re.fullmatch(r"\w*\D1", n)], "json2ts duplicated a type (Foo1)"
        assert not {"Event", "Error", "Request", "Response", "Node", "Text"} & set(declared), (
            "shadows a global"
        )
    assert (
        "export type ServerMessage = HelloFrame | SnapshotFrame | EventFrame | ErrorFrame | PongFrame;"
        in (PROTOCOL_TS)
    )
    assert "export type ClientMessage = SubscribeFrame | UnsubscribeFrame | PingFrame;" in PROTOCOL_TS
    for name in ("SessionState", "Role", "TerminalStatus"):  # enum-like unions have names
        assert re.search(rf'^export type {name} = "\w+"( \| "\w+")+;$', APP_TS, flags=re.M), name
    assert 'from "./protocol.js"' in APP_TS and "SessionsSnapshot" not in PROTOCOL_TS  # kept apart


def _interface(ts: str, name: str) -> str:
    match = re.search(rf"^export interface {name} {{\n(.*?)^}}", ts, flags=re.M | re.S)
    assert match, name
    return match.group(1)


def test_optional_is_not_nullable_and_nullable_is_not_optional() -> None:
    assert "  id?: string;\n" in _interface(PROTOCOL_TS, "PongFrame")  # omitted when absent, never null
    assert "  topic?: string;\n" in _interface(PROTOCOL_TS, "ErrorFrame")
    assert "  id?: RequestId | null;\n" in _interface(PROTOCOL_TS, "PingFrame")  # a client may send null
    assert "  session_id: string | null;\n" in _interface(APP_TS, "Terminal")  # always sent, may be null


def test_catalogues_are_runtime_constants_with_their_meaning_and_advice() -> None:
    for code in ErrorCode:
        doc = re.escape(ERROR_CODE_DOCS[code].split(".")[0])
        assert re.search(rf"   \* {doc}.*\n   \*/\n  {code.name}: \"{code.value}\",", PROTOCOL_TS), code
    for close in CloseCode:
        advice, meaning = CLOSE_CODE_DOCS[close]
        assert re.search(rf"   \* {re.escape(meaning.split('.')[0])}.*Reconnect: {advice}\.\n   \*/\n"
                         rf"  {close.name}: {close.value},", PROTOCOL_TS), close  # fmt: skip
        assert f'  {close.value}: "{advice.value}",\n' in PROTOCOL_TS  # RECONNECT_ADVICE, as data
    assert "export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];" in PROTOCOL_TS


def test_python_models_read_cleanly() -> None:
    from aiohttp_realtime.generated import client_message, server_message

    assert server_message.ErrorCode.UNKNOWN_TOPIC.value == "unknown_topic"
    for module in (client_message, server_message):
        source = Path(module.__file__ or "").read_text()
        # A required type never defaults to None (datamodel-codegen did that to inline roots).
        assert not re.search(r"root: .*= None", source), module.__name__


def test_topic_map_lists_every_topic() -> None:
    for topic in load_topics(TOPICS):
        key = re.escape(re.sub(r"\{\w+\}", "${string}", topic.pattern))
        snapshot = topic.snapshot.__name__
        assert re.search(rf"^  .*{key}.*: {{ snapshot: {snapshot}; event: \w+ }};$", APP_TS, flags=re.M)


def _tsc(tmp_path: Path, edit: tuple[str, str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Compile tests/ts-fixture against a copy of frontend-types/, optionally with one edit."""
    shutil.copytree(ROOT / "frontend-types", tmp_path / "frontend-types", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("node_modules", "dist"))  # fmt: skip
    shutil.copytree(ROOT / "tests" / "ts-fixture", tmp_path / "tests" / "ts-fixture", dirs_exist_ok=True)
    if edit is not None:
        file, old, new = edit
        path = tmp_path / "frontend-types" / file
        text = path.read_text()
        assert old in text, (file, old)
        path.write_text(text.replace(old, new, 1))
    return subprocess.run(
        [str(TSC), "--noEmit", "-p", str(tmp_path / "tests" / "ts-fixture")], capture_output=True, text=True
    )


def test_fixture_compiles(tmp_path: Path) -> None:
    result = _tsc(tmp_path)
    assert result.returncode == 0, result.stdout


@pytest.mark.parametrize(
    "edit",
    [
        ("protocol.ts", 'type: "pong";', 'type?: "pong";'),  # a tag turned optional
        (
            "protocol.ts",
            "export type ClientMessage = SubscribeFrame | UnsubscribeFrame | PingFrame;",
            "export type ClientMessage = SubscribeFrame | UnsubscribeFrame | PingFrame | { type: string };",
        ),  # a union turned loose
        ("app.ts", "snapshot: SessionsSnapshot;", "snapshot: unknown;"),  # a payload left untyped
        ("protocol.ts", "  SLOW_CONSUMER: 4008,\n", ""),  # a code without its advice entry
    ],
    ids=["optional-tag", "loose-union", "untyped-payload", "catalogue-mismatch"],
)
def test_fixture_fails_when_narrowing_breaks(edit: tuple[str, str, str], tmp_path: Path) -> None:
    result = _tsc(tmp_path, edit)
    assert result.returncode != 0, result.stdout


def test_drift_check_fails_on_an_unregenerated_model_change_and_its_fix_works(tmp_path: Path) -> None:
    copy = tmp_path / "tree"
    shutil.copytree(ROOT, copy, symlinks=True, ignore=shutil.ignore_patterns(
        ".git", ".venv", "node_modules", "build", "dist", "__pycache__", ".*_cache"))  # fmt: skip
    for shared in (".venv", "node_modules", "frontend-client/node_modules", "frontend-types/node_modules"):
        if (ROOT / shared).exists():
            (copy / shared).symlink_to(ROOT / shared)
    env = {**os.environ, "TYPEGEN_NO_SETUP": "1"}

    def check() -> subprocess.CompletedProcess[str]:
        return subprocess.run(["scripts/check-types"], cwd=copy, env=env, capture_output=True, text=True)

    models = copy / "backend" / "models.py"
    field = "    title: str\n    state: SessionState\n"
    models.write_text(
        models.read_text().replace(field, field.replace("state:", "region: str\n    state:"), 1)
    )
    failed = check()
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert '+        "region": {' in failed.stderr  # the readable diff: schema, TypeScript, Python
    assert "+  region: string;" in failed.stderr
    assert "+    region: str" in failed.stderr
    assert "    ./scripts/generate-types\n" in failed.stderr  # the command that fixes it
    fix = subprocess.run(["./scripts/generate-types"], cwd=copy, env=env, capture_output=True, text=True)
    assert fix.returncode == 0, fix.stderr
    passed = check()  # no commit needed
    assert passed.returncode == 0, passed.stdout + passed.stderr
