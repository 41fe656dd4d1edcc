"""GET /metrics: the realtime library's collectors and the demo's HTTP counter, with
bounded labels; aggregated over `--workers`; off (no-ops) without prometheus-client;
and the Grafana dashboard asks only for metrics that exist.

The collectors are process-wide (one registry, as in production), so the assertions
compare a scrape after the traffic with one before it.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from aiohttp_realtime import HUB_KEY, RealtimeSettings, metrics
from aiohttp_realtime.frames import Frame
from backend.app import Config, build_app
from tests.redis_support import redis_base_url, redis_prefix  # noqa: F401
from tests.support import WsClient
from tests.test_workers import _worker_pids, workers

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape(client: Any) -> tuple[str, Samples]:
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain")
    text = await resp.text()
    return text, parse(text)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_metrics_count_connections_subscriptions_events_errors_and_evictions(aiohttp_client):
    # A small frame budget: a client that keeps sending while limited is closed (1008).
    limits = RealtimeSettings(frames_per_s=0.1, frames_burst=6)
    client = await aiohttp_client(build_app(Config(simulate=False, realtime=limits)))
    _, before = await scrape(client)

    resp = await client.post("/api/sessions", json={"title": "metrics"})
    assert resp.status == 201
    sid = (await resp.json())["id"]
    activity = f"sessions.activity:{sid}"
    ws = await WsClient.connect(client)
    await ws.subscribe("sessions.state", activity)
    assert [f["type"] for f in await ws.barrier()] == ["snapshot", "snapshot"]
    resp = await client.post(f"/api/sessions/{sid}/messages", json={"role": "user", "text": "hi"})
    assert resp.status == 201
    await ws.send({"type": "nonsense"})  # an error frame: unknown_type
    frames = await ws.barrier()
    assert [f["type"] for f in frames] == ["event", "error"]

    spammer = await client.ws_connect("/api/realtime")
    await spammer.receive()  # hello
    for _ in range(20):
        await spammer.send_str('{"type": "ping"}')
    while not (await spammer.receive()).type.name.startswith("CLOSE"):
        pass
    assert spammer.close_code == 1008
    await spammer.close()

    upgraded = {"route": "/api/realtime", "status": "101"}

    def spammer_gone(samples: Samples) -> bool:
        """Its connection forgotten, and its handler returned (after a linger)."""
        return value(samples, "realtime_connections") == value(before, "realtime_connections") + 1 and value(
            samples, "http_requests_total", **upgraded
        ) > value(before, "http_requests_total", **upgraded)

    after = await eventually(client, spammer_gone)
    text, _ = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    pattern = "sessions.activity:{session_id}"
    assert moved("realtime_connects_total") == 2
    assert moved("realtime_connections") == 1  # the spammer is gone
    assert moved("realtime_subscriptions", pattern=pattern) == 1
    assert moved("realtime_subscriptions", pattern="sessions.state") == 1
    assert moved("realtime_events_published_total", pattern=pattern) >= 1
    assert moved("realtime_frames_delivered_total", pattern=pattern) >= 1
    assert moved("realtime_snapshot_seconds_count", pattern=pattern) == 1
    assert moved("realtime_publish_to_write_seconds_count") >= 1
    assert moved("realtime_client_errors_total", code="unknown_type") == 1
    assert moved("realtime_client_errors_total", code="rate_limited") >= 1
    assert moved("realtime_evictions_total", reason="rate_limited") == 1
    assert moved("realtime_disconnects_total", code="1008") == 1
    assert moved("realtime_connection_queued_bytes_count") == 1
    assert moved("http_requests_total", route="/api/sessions", status="201") == 1
    assert moved("http_requests_total", route="/api/sessions/{id}/messages", status="201") == 1
    assert moved("http_requests_total", **upgraded) == 1  # the spammer's: the other is open
    # Labels are patterns and templates: no concrete topic or path anywhere.
    assert sid not in text

    await ws.close()  # its subscriptions end with it
    subscribed = value(before, "realtime_subscriptions", pattern=pattern)
    await eventually(client, lambda s: value(s, "realtime_subscriptions", pattern=pattern) == subscribed)


async def test_requests_are_counted_by_outcome_and_timed_by_registered_method(aiohttp_client):
    client = await aiohttp_client(build_app(Config(simulate=False)))
    _, before = await scrape(client)
    ws = await WsClient.connect(client)
    calls = [
        ("sessions.create", {"title": "metered"}),
        ("sessions.remove", {"id": "s-none"}),  # not_found
        ("sessions.create", {"title": ""}),  # invalid_params
        ("no.such.method-x1", {}),  # method_not_found
    ]
    for i, (method, params) in enumerate(calls):
        await ws.send({"type": "request", "id": str(i), "method": method, "params": params})
    answered: set[str] = set()
    while len(answered) < 4:  # responses come as calls finish, not in order
        frame = await ws.recv()
        if frame["type"] == "response":
            answered.add(frame["id"])
    text, after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("realtime_requests_total", outcome="ok") == 1
    assert moved("realtime_requests_total", outcome="not_found") == 1
    assert moved("realtime_requests_total", outcome="invalid_params") == 1
    assert moved("realtime_requests_total", outcome="method_not_found") == 1
    assert moved("realtime_request_seconds_count", method="sessions.create") == 1
    assert moved("realtime_request_seconds_count", method="sessions.remove") == 1
    assert "no.such.method-x1" not in text  # a client's method name is never a label


async def eventually(client: Any, condition: Callable[[Samples], bool]) -> Samples:
    """Scrape until `condition` holds (a close is counted once the server has run it)."""
    for _ in range(500):
        _text, samples = await scrape(client)
        if condition(samples):
            return samples
        await asyncio.sleep(0.01)
    raise AssertionError("the metrics never settled")


async def test_an_unmatched_path_is_counted_under_one_label(aiohttp_client):
    client = await aiohttp_client(build_app(Config(simulate=False)))
    _, before = await scrape(client)
    for path in ("/no/such/a", "/no/such/b"):
        assert (await client.get(path)).status == 404
    text, after = await scrape(client)
    key = {"route": "unmatched", "status": "404"}
    assert value(after, "http_requests_total", **key) - value(before, "http_requests_total", **key) == 2
    assert "/no/such" not in text


def dashboard_metric_names() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    names: set[str] = set()

    def walk(node: Any) -> Iterator[str]:
        if isinstance(node, dict):
            for key, item in node.items():
                if key == "expr" and isinstance(item, str):
                    yield item
                else:
                    yield from walk(item)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)

    for expr in walk(dashboard):
        without_labels = re.sub(r"\{[^}]*\}", "", expr)
        names |= set(re.findall(r"\b(?:realtime|http)_[a-z0-9_]+\b", without_labels))
    return names


def exposed_names(text: str) -> set[str]:
    """Every sample name a scrape can hold, including those of families with no sample
    yet (a labelled counter before its first increment)."""
    names = {name for name, _labels in parse(text)}
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",), "gauge": ("",)}
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE):
        names |= {name + suffix for suffix in suffixes.get(kind, ("",))}
    return names


async def test_every_metric_the_dashboard_queries_exists(aiohttp_client):
    client = await aiohttp_client(build_app(Config(simulate=False)))
    text, _ = await scrape(client)
    wanted = dashboard_metric_names()
    assert len(wanted) >= 10, wanted
    assert wanted <= exposed_names(text), wanted - exposed_names(text)


def test_the_hub_works_and_metrics_are_no_ops_without_prometheus_client():
    code = (
        "import sys\n"
        "sys.modules['prometheus_client'] = None  # as if not installed\n"
        "from aiohttp_realtime import metrics\n"
        "assert not metrics.ENABLED\n"
        "metrics.connected(); metrics.delivered('t', 3); metrics.closing(4008, 'queue_full', 10)\n"
        "assert b'metrics are off' in metrics.render()[0]\n"
        "import pytest\n"
        "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-p', 'no:xdist', "
        "'tests/test_hub.py', 'tests/test_ordering.py']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=110
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


async def test_workers_scrape_aggregates_every_worker(redis_base_url, redis_prefix):  # noqa: F811
    argv = ("--broker", redis_base_url, "--redis-prefix", redis_prefix, "--no-simulate", "--port", "0")
    connections = 8
    async with workers(*argv) as (proc, port), aiohttp.ClientSession() as session:
        pids = _worker_pids(proc.pid)
        metrics_dir = _multiproc_dir(pids[0])
        assert _listing(metrics_dir) is not None
        sockets = []
        for _ in range(connections):
            ws = await session.ws_connect(f"http://127.0.0.1:{port}/api/realtime")
            await ws.receive_json()  # hello: the worker has counted it
            sockets.append(ws)
        # Every scrape sums every worker's, whichever worker answers it (a new
        # connection each time: the kernel hands them to either).
        for _ in range(4):
            async with aiohttp.ClientSession() as fresh:
                resp = await fresh.get(f"http://127.0.0.1:{port}/metrics")
                samples = parse(await resp.text())
            assert value(samples, "realtime_connections") == connections
            assert value(samples, "realtime_connects_total") == connections
        # Each worker writes its samples to files of its own, merged by the scrape.
        written = {name.removesuffix(".db").rsplit("_", 1)[-1] for name in _listing(metrics_dir) or []}
        assert {str(pid) for pid in pids} <= written
        for ws in sockets:
            await ws.close()
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            assert await proc.wait() == 0
    assert _listing(metrics_dir) is None  # the parent removed it


def _multiproc_dir(pid: int) -> Path:
    """The PROMETHEUS_MULTIPROC_DIR a process was started with (/proc: never blocks)."""
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    [value] = [v.split(b"=", 1)[1] for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR=")]
    return Path(value.decode())


def _listing(directory: Path) -> list[str] | None:
    """The names in `directory`, or None if it does not exist."""
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else None


async def test_the_queued_bytes_gauge_counts_each_shared_frame_once(aiohttp_client):
    app = build_app(Config(simulate=False))
    client = await aiohttp_client(app)
    sockets = [await client.ws_connect("/api/realtime") for _ in range(3)]
    for ws in sockets:
        await ws.receive()
    hub = app[HUB_KEY]
    conns = list(hub.connections)
    snapshot, event = Frame(b"s" * 100_000), Frame(b"e" * 1_000)
    # As if a storm's snapshot and an event waited in every outbox: the same objects.
    for conn in conns:
        conn.state.frames += [snapshot, event]
    total = metrics.sample_queued(hub.connections)
    assert total == 101_000 + sum(conn.unshared_bytes for conn in conns)
    own = [Frame(b"o" * 500) for _ in conns]  # distinct objects count once each
    for conn, frame in zip(conns, own, strict=True):
        conn.state.frames.append(frame)
    assert metrics.sample_queued(hub.connections) == total + 1_500
    body = await (await client.get("/metrics")).text()
    assert f"realtime_queued_bytes {float(total + 1_500)}" in body
    for conn in conns:
        conn.state.frames.clear()
    for ws in sockets:
        await ws.close()
