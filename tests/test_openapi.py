"""The OpenAPI document (backend/openapi.py): served as committed, valid OpenAPI 3.1, covering
every route, and true of every response the demo gives - hand-picked requests for each
documented status, then schemathesis against a real `python -m backend` process."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import OpenAPIV31SpecValidator

from aiohttp_realtime import BearerTokens, Principal, RealtimeSettings
from backend.app import Config, build_app
from backend.guard import HttpLimits
from backend.memory_store import MemoryStore
from backend.openapi import OPENAPI_PATH, document
from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "schemas" / "openapi.json"
DOC = json.loads(COMMITTED.read_text())
#: Routes that are not part of the JSON API: the page, its files and the WebSocket.
NOT_HTTP_API = ("/", "/react/", "/static", "/api/realtime")  # pages, files, the WebSocket
#: Served but not yet in the document. /metrics (Prometheus text) lands in another change
#: concurrently: once it is committed, add it to backend/openapi.py (200 text/plain, 403
#: host_not_allowed, 500) and take it out of here.
UNDOCUMENTED: set[str] = set()
TOKENS = {
    "reader-token-0123456789": Principal("reader", frozenset({"read"})),
    "writer-token-0123456789": Principal("writer", frozenset({"read", "write"})),
}


def _template(path: str) -> tuple[str, dict[str, str]]:
    """The document's path template that matches a concrete request path."""
    for template in DOC["paths"]:
        regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(regex, path):
            return template, DOC["paths"][template]
    raise AssertionError(f"{path} is not in the document")


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node and node["$ref"].startswith("#/components/responses/"):
        node = DOC["components"]["responses"][node["$ref"].rsplit("/", 1)[1]]
    return node


async def conforms(resp: Any, method: str, path: str) -> int:
    """Assert that the response is one the document describes for this operation."""
    template, item = _template(path)
    operation = item.get(method.lower())
    body = await resp.read()
    if operation is None or resp.status == 405:  # documented in info.description: 405 + Error
        assert resp.status == 405 and "Allow" in resp.headers, (method, path, resp.status)
        schema: dict[str, Any] = {"$ref": "#/components/schemas/Error"}
    else:
        declared = operation["responses"].get(str(resp.status))
        assert declared is not None, f"{method} {template}: {resp.status} is not documented: {body!r}"
        declared = _resolve(declared)
        for name, header in declared.get("headers", {}).items():
            assert not header.get("required") or name in resp.headers, (method, template, name)
        if "content" not in declared:
            assert body == b"", (method, template, body)
            return int(resp.status)
        [(media_type, content)] = declared["content"].items()
        assert resp.content_type == media_type, (method, template, resp.content_type)
        schema = content["schema"]
        if media_type != "application/json":
            return int(resp.status)
    errors = list(
        jsonschema.Draft202012Validator({**schema, "components": DOC["components"]}).iter_errors(
            json.loads(body)
        )
    )
    assert not errors, f"{method} {template} {resp.status}: {[e.message for e in errors]}: {body!r}"
    return int(resp.status)


def test_the_committed_document_is_current_and_valid_openapi_3_1() -> None:
    assert document() == DOC, "schemas/openapi.json is stale: run ./scripts/generate-types"
    OpenAPIV31SpecValidator(DOC).validate()
    assert DOC["openapi"].startswith("3.1.")


def test_every_route_is_documented() -> None:
    app = build_app(Config(simulate=False))
    served: set[tuple[str, str]] = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter") or info.get("prefix", "")
        if path in NOT_HTTP_API or path in UNDOCUMENTED or route.method in ("HEAD", "*"):
            continue
        served.add((path, route.method.lower()))
    documented = {(p, m) for p, item in DOC["paths"].items() for m in item if m != "parameters"}
    assert served == documented


async def test_served_document_is_the_committed_one_and_needs_no_token(aiohttp_client: Any) -> None:
    client = await aiohttp_client(build_app(Config(simulate=False, tokens=BearerTokens(TOKENS))))
    resp = await client.get(OPENAPI_PATH)
    assert resp.status == 200 and await resp.read() == COMMITTED.read_bytes()
    assert await conforms(resp, "GET", OPENAPI_PATH) == 200
    refused = await client.get(OPENAPI_PATH, headers={"Host": "evil.example"})
    assert await conforms(refused, "GET", OPENAPI_PATH) == 403
    assert await conforms(await client.post(OPENAPI_PATH, json={}), "POST", OPENAPI_PATH) == 405
    assert (await client.get("/api/sessions")).status == 401  # the rest of /api/ still needs one


async def test_every_response_conforms(demo_client: Any) -> None:
    client = await demo_client()
    seen: dict[tuple[str, str], set[int]] = {}

    async def call(method: str, path: str, **kwargs: Any) -> int:
        status = await conforms(await client.request(method, path, **kwargs), method, path)
        seen.setdefault((method, _template(path)[0]), set()).add(status)
        return status

    assert await call("GET", "/healthz") == 200
    assert await call("GET", "/readyz") == 200
    assert await call("GET", "/api/sessions") == 200
    assert await call("POST", "/api/sessions", json={"title": "t"}) == 201
    sid = (await (await client.get("/api/sessions")).json())[0]["id"]
    one = f"/api/sessions/{sid}"
    assert await call("GET", one) == 200
    assert await call("GET", "/api/sessions/nope") == 404
    assert await call("PATCH", one, json={"state": "running"}) == 200
    assert await call("PATCH", one, json={}) == 422
    assert await call("PATCH", "/api/sessions/nope", json={"title": "x"}) == 404
    assert await call("POST", f"{one}/messages", json={"role": "user", "text": "hi"}) == 201
    assert await call("POST", f"{one}/messages", json={"role": "robot", "text": ""}) == 422
    assert await call("POST", "/api/sessions/nope/messages", json={"role": "user", "text": "x"}) == 404
    invalid = {"data": b"{", "headers": {"Content-Type": "application/json"}}
    assert await call("POST", "/api/sessions", **invalid) == 400
    assert await call("POST", "/api/sessions", data=b"title=x", headers={"Content-Type": "text/plain"}) == 415
    assert await call("POST", "/api/sessions", json={"title": "x" * 1_000_000}) == 413
    assert await call("POST", "/api/sessions", json={"title": "x"}, headers={"Host": "evil.example"}) == 403
    hostile = {"Origin": "https://evil.example"}
    assert await call("PATCH", one, json={"title": "x"}, headers=hostile) == 403
    assert await call("DELETE", one) == 204
    assert await call("DELETE", one) == 404
    assert await call("PUT", one, json={}) == 405
    assert {k: v for k, v in seen.items() if not v} == {}


async def test_refusals_conform(aiohttp_client: Any) -> None:
    """401 and 403 with tokens, 409 at a quota, 429 past the write rate."""
    config = Config(
        simulate=False,
        tokens=BearerTokens(TOKENS),
        http=HttpLimits(writes_per_s=0.001, writes_burst=2),
        realtime=RealtimeSettings(),
    )
    client = await aiohttp_client(build_app(config, store=MemoryStore(max_sessions=1)))
    reader = {"Authorization": "Bearer reader-token-0123456789"}
    writer = {"Authorization": "Bearer writer-token-0123456789"}
    assert await conforms(await client.get("/api/sessions"), "GET", "/api/sessions") == 401
    resp = await client.post("/api/sessions", json={"title": "x"}, headers=reader)
    assert await conforms(resp, "POST", "/api/sessions") == 403
    resp = await client.post("/api/sessions", json={"title": "a"}, headers=writer)
    assert await conforms(resp, "POST", "/api/sessions") == 201
    resp = await client.post("/api/sessions", json={"title": "b"}, headers=writer)
    assert await conforms(resp, "POST", "/api/sessions") == 409
    resp = await client.post("/api/sessions", json={"title": "c"}, headers=writer)
    assert await conforms(resp, "POST", "/api/sessions") == 429


async def test_a_store_outage_conforms(aiohttp_client: Any) -> None:
    from backend.store import StoreUnavailable

    class Down(MemoryStore):
        healthy = False

        async def sessions(self) -> Any:
            raise StoreUnavailable("down")

    client = await aiohttp_client(build_app(Config(simulate=False), store=Down()))
    assert await conforms(await client.get("/api/sessions"), "GET", "/api/sessions") == 503
    assert await conforms(await client.get("/readyz"), "GET", "/readyz") == 503


# ---------------------------------------------------------------- schemathesis, on a real process


@pytest.fixture(scope="module")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("openapi") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "backend", "--port", str(port), "--no-simulate"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while b"serving on" not in log.read_bytes():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)
    assert b"Traceback" not in log.read_bytes(), log.read_text()


def _operations() -> list[Any]:
    import schemathesis

    schema = schemathesis.openapi.from_dict(DOC)
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("operation", _operations(), ids=lambda op: op.label)
def test_schemathesis_finds_no_5xx_and_no_nonconforming_response(operation: Any, live_url: str) -> None:
    from schemathesis.checks import not_a_server_error
    from schemathesis.generation import GenerationMode
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
    ]
    modes = [GenerationMode.POSITIVE]
    if "requestBody" in DOC["paths"][operation.path][operation.method.lower()]:
        modes.append(GenerationMode.NEGATIVE)  # elsewhere nothing can be made invalid
    for mode in modes:

        @settings(
            max_examples=30,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            case.call_and_validate(base_url=live_url, checks=checks)

        run()
