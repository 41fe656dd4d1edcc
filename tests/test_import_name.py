"""The library has one import name, `aiohttp_realtime`: in a checkout its folder is also
reachable as `backend.realtime`, and importing both would load every module twice (the
second `metrics` import crashed with prometheus-client's DuplicateTimeseries)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_importing_the_folder_by_its_path_name_is_refused_with_the_right_name() -> None:
    result = _run("import aiohttp_realtime\nimport backend.realtime")
    assert result.returncode != 0
    assert "imported as `aiohttp_realtime`, not `backend.realtime`" in result.stderr
    assert "DuplicateTimeseries" not in result.stderr


def test_the_demo_and_the_library_load_each_module_once() -> None:
    result = _run(
        "import sys, backend.app, backend.__main__, aiohttp_realtime.redis_broker\n"
        "print(sorted(m for m in sys.modules if m.startswith('backend.realtime')))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_file_of_the_repository_imports_the_library_by_its_folder() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("backend", "tests", "scripts")
        for path in (ROOT / folder).rglob("*.py")
        if "/build/" not in str(path)
        and path != Path(__file__).resolve()
        and ("import backend.realtime" in (text := path.read_text()) or "from backend.realtime" in text)
    ]
    assert offenders == []
