"""The service's one settings model (backend/settings.py): every source takes effect,
in the documented order, a bad value is one line naming the field and its source, and
the help, the effective-settings printout and docs/configuration.md agree."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from backend import settings as settings_module
from backend.__main__ import parse_args
from backend.settings import Settings, SettingsError, load
from tests.support import free_port, run_until_serving

ROOT = Path(__file__).resolve().parents[1]


def clean_env(**values: str) -> dict[str, str]:
    """The environment without any BACKEND_* the test runner may carry, plus `values`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("BACKEND_")}, **values}


def writes_between_429s(status: list[int]) -> int:
    return next((i for i, s in enumerate(status) if s == 429), len(status))


async def burst_of_writes(port: int, n: int) -> list[int]:
    async with aiohttp.ClientSession() as session:
        statuses = []
        for i in range(n):
            async with session.post(f"http://127.0.0.1:{port}/api/sessions", json={"title": f"w{i}"}) as r:
                statuses.append(r.status)
        return statuses


@pytest.mark.parametrize("source", ["env", "flag", "file"])
async def test_the_write_rate_takes_effect_from_each_source(source: str, tmp_path: Path) -> None:
    """The default (20/s, burst 40) refuses the 41st quick write; 1,000/s with a burst of
    60 does not, whichever source says so."""
    port = free_port()
    cmd = [sys.executable, "-m", "backend", "--port", str(port), "--no-simulate", "--max-sessions", "5000"]
    env = clean_env()
    if source == "env":
        env.update(BACKEND_WRITES_PER_S="1000", BACKEND_WRITES_BURST="60")
    elif source == "flag":
        cmd += ["--writes-per-s", "1000", "--writes-burst", "60"]
    else:
        config = tmp_path / "backend.toml"
        config.write_text("writes_per_s = 1000\nwrites_burst = 60\n")
        cmd += ["--config", str(config)]
    async with run_until_serving(cmd, env=env):
        statuses = await burst_of_writes(port, 60)
    assert statuses == [201] * 60, statuses


async def test_the_default_write_rate_refuses_a_quick_burst() -> None:
    """The other side of the test above: without a source, a quick burst of 60 is refused
    after the default burst of 40 (and the few tokens refilled at 20/s meanwhile)."""
    port = free_port()
    cmd = [sys.executable, "-m", "backend", "--port", str(port), "--no-simulate"]
    async with run_until_serving(cmd, env=clean_env()):
        statuses = await burst_of_writes(port, 60)
    assert 40 <= writes_between_429s(statuses) < 60, statuses


def test_precedence_is_flag_then_environment_then_file_then_default(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("writes_per_s = 3\nmax_queue_bytes = 2097152\n")
    env = {"BACKEND_WRITES_PER_S": "2"}
    flags = ["--config", str(config)]
    assert load([*flags, "--writes-per-s", "1"], env).settings.writes_per_s == 1
    loaded = load(flags, env)
    assert loaded.settings.writes_per_s == 2 and loaded.sources["writes_per_s"] == "env BACKEND_WRITES_PER_S"
    loaded = load(flags, {})
    assert loaded.settings.writes_per_s == 3 and loaded.sources["writes_per_s"] == f"{config} (writes_per_s)"
    assert loaded.settings.max_queue_bytes == 2 << 20  # a library setting, from the file
    assert load([], {}).settings.writes_per_s == 20 and load([], {}).sources["writes_per_s"] == "default"
    # The file may also come from BACKEND_CONFIG.
    assert load([], {"BACKEND_CONFIG": str(config)}).settings.writes_per_s == 3


@pytest.mark.parametrize(
    ("argv", "env", "file", "says"),
    [
        (
            ["--writes-per-s", "fast"],
            {},
            None,
            "flag --writes-per-s: writes_per_s: Input should be a valid number",
        ),
        (
            [],
            {"BACKEND_WRITES_PER_S": "-1"},
            None,
            "env BACKEND_WRITES_PER_S: writes_per_s: Input should be greater",
        ),
        ([], {}, "writes_per_s = 'x'", "(writes_per_s): writes_per_s: Input should be a valid number"),
        ([], {}, "no_such_thing = 1", "unknown setting 'no_such_thing'"),
        ([], {}, "writes_per_s = ", "not valid TOML"),
        (
            ["--heartbeat-s", "soon"],
            {},
            None,
            "flag --heartbeat-s: heartbeat_s: Input should be a valid integer",
        ),
    ],
)
def test_a_bad_value_names_the_field_and_its_source(
    argv: list[str], env: dict[str, str], file: str | None, says: str, tmp_path: Path
) -> None:
    if file is not None:
        config = tmp_path / "bad.toml"
        config.write_text(file + "\n")
        argv = [*argv, "--config", str(config)]
    with pytest.raises(SettingsError) as raised:
        load(argv, env)
    [line] = raised.value.lines
    assert says in line, line


def test_fields_that_cannot_go_together_name_their_sources(capsys: Any) -> None:
    for argv, says in (
        (
            ["--max-queue-bytes", "1000", "--max-snapshot-bytes", "2000"],
            "flag --max-snapshot-bytes, flag --max-queue-bytes: max_snapshot_bytes must be",
        ),
        (
            ["--forwarded-allow-ips", "10.0.0.1,proxy.local"],
            "flag --forwarded-allow-ips: forwarded_allow_ips",
        ),
        (
            ["--port", "0", "--allow-origin", "https://a.example"],
            "flag --allow-origins: allow_origins: needs a fixed",
        ),
    ):
        with pytest.raises(SystemExit) as exited:
            parse_args(argv)
        assert exited.value.code == 2
        assert says in capsys.readouterr().err, argv


def test_the_command_line_reaches_every_part_of_the_config(tmp_path: Path) -> None:
    config = parse_args(
        [
            "--writes-per-s=7",
            "--max-sessions=9",
            "--max-queue-bytes=4194304",
            "--forwarded-allow-ips=10.0.0.0/8,::1",
            "--allow-host=app.example.com",
            "--allow-origin=https://app.example.com",
            "--allow-origin=https://b.example.com,https://c.example.com",
        ]
    )
    assert config.http.writes_per_s == 7 and config.store_quotas["max_sessions"] == 9
    assert config.realtime.max_queue_bytes == 4 << 20
    assert [str(n) for n in config.forwarded_allow_ips] == ["10.0.0.0/8", "::1/128"]
    assert config.realtime.allowed_hosts is not None and "app.example.com" in config.realtime.allowed_hosts
    assert config.realtime.allowed_origins is not None
    assert {"https://b.example.com", "https://c.example.com"} <= config.realtime.allowed_origins


def run_backend(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "backend", *args],
        cwd=ROOT,
        env=clean_env(**(env or {})),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_config_prints_the_effective_settings_as_a_valid_file_with_secrets_masked(tmp_path: Path) -> None:
    database = "postgresql://app:hunter2@db.internal:5432/app"
    done = run_backend("config", "--database", database, env={"BACKEND_WRITES_PER_S": "33"})
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout
    assert 'database = "postgresql://app:***@db.internal:5432/app"  # flag --database' in done.stdout
    assert "writes_per_s = 33.0  # env BACKEND_WRITES_PER_S" in done.stdout
    assert "max_snapshot_builds = 4  # default" in done.stdout
    printed = tmp_path / "printed.toml"
    printed.write_text(done.stdout.replace("app:***@", "app:pw@"))
    again = load(["--config", str(printed)], {}).settings
    assert again.writes_per_s == 33 and again.max_snapshot_builds == 4 and again.database.endswith("/app")


def test_a_bad_value_exits_2_with_one_line() -> None:
    done = run_backend("--writes-per-s", "fast")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "python -m backend: error: flag --writes-per-s: writes_per_s: Input should be a valid number, "
        "unable to parse string as a number (got 'fast')"
    ]


def test_help_lists_every_setting_in_its_group() -> None:
    text = settings_module.parser().format_help()
    for title in settings_module.GROUPS.values():
        assert f"\n{title}:\n" in text, title
    for name in Settings.model_fields:
        if name not in settings_module.HIDDEN:
            assert settings_module.flag(name) in text and settings_module.env_name(name) in text, name


def test_docs_configuration_is_the_models_reference() -> None:
    doc = (ROOT / "docs" / "configuration.md").read_text()
    begin, end = "<!-- reference:begin -->\n", "<!-- reference:end -->"
    assert doc[doc.index(begin) + len(begin) : doc.index(end)] == settings_module.reference(), (
        "docs/configuration.md is stale: run `.venv/bin/python -m backend.settings`"
    )


def test_every_option_the_readme_and_deploy_doc_name_is_a_setting() -> None:
    """The README's options paragraph and docs/deploy.md may name only flags that exist."""
    known = {"--help", "--config"}
    for name in Settings.model_fields:
        extra = settings_module._extra(name)
        known |= {settings_module.flag(name), *extra.get("aliases", [])}
        if settings_module._is_bool(name):
            known.add("--no-" + name.replace("_", "-"))
    for doc in ("README.md", "docs/deploy.md", "docs/configuration.md"):
        path = ROOT / doc
        if not path.exists():
            continue
        text = path.read_text()
        lines = [
            line for line in text.splitlines() if "python -m backend" in line or "scripts/server" in line
        ]
        import re

        named = {m for line in lines for m in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]+", line)}
        assert named <= known, (doc, sorted(named - known))


def test_the_old_environment_names_still_work() -> None:
    env = {
        "BACKEND_DATABASE": "",
        "BACKEND_DATABASE_TIMEOUT_S": "3",
        "BACKEND_HEADERS_TIMEOUT_S": "4",
        "BACKEND_ALLOW_ORIGINS": "https://a.example, https://b.example",
    }
    s = load([], env).settings
    assert (s.database, s.database_timeout_s, s.headers_timeout_s) == (None, 3, 4)
    assert s.allow_origins == ["https://a.example", "https://b.example"]
    assert load(["--database-timeout", "6", "--headers-timeout", "7"], {}).settings.database_timeout_s == 6


async def test_sigterm_still_closes_after_a_settings_load() -> None:
    """`python -m backend` with settings from all three sources serves and stops."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "backend",
        "--port",
        str(port),
        "--no-simulate",
        "--max-snapshot-builds",
        "2",
    ]
    async with run_until_serving(cmd, env=clean_env(BACKEND_REDIS_PREFIX="x:")) as proc:
        proc.terminate()
        assert await asyncio.wait_for(proc.wait(), 15) == 0
