"""The fan-out benchmark (scripts/bench-fanout) runs end to end at tiny sizes.

Only that it completes, checks its own deliveries and prints usable ratios: speed is
shown by the benchmark's printed ratios, never asserted by a test. Every mode that is
available here runs (node-ws needs node and `npm ci --prefix scripts/bench/node`,
which scripts/bench-fanout does; otherwise the bench says it skipped it).
"""

from __future__ import annotations

import asyncio
import math

import pytest

from aiohttp_realtime import RealtimeSettings
from scripts.bench import common, fanout, loadgen, server

SUBSCRIBERS = 5


def _table(out: str, header: str) -> list[list[str]]:
    """The rows of the printed table whose column header line starts with `header`."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == header.split()[:2])
    rows = []
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows.append(line.split())
    return rows


def test_quick_run_of_every_available_mode_delivers_everything_and_prints_ratios(capsys):
    available = [m for m in fanout.MODES if fanout.unavailable(m) is None]
    assert {"bare", "hub", "hub-sse", "websockets", "socketio"} <= set(available)  # dev dependencies
    results = fanout.run(
        [
            *("--quick", "--subscribers", str(SUBSCRIBERS), "--workloads", "burst", "--scale", "0"),
            *("--latency-modes", "hub", "--latency-subscribers", "3", "--latency-seconds", "0.5"),
        ]
    )
    out = capsys.readouterr().out

    assert {r.mode for r in results.cpu} == set(available)
    for row in results.cpu:
        # The driver raises unless every subscriber got seq 1..K contiguously, and the
        # first frame seen was byte for byte the common one.
        (run,) = row.runs
        assert run.received == SUBSCRIBERS * run.events > 0
    printed = {row[2]: row for row in _table(out, "workload subscribers")}
    assert set(printed) == set(available)
    for mode, (_w, subscribers, _m, events, us_per_frame, ratio, paired, _sys) in printed.items():
        assert int(subscribers) == SUBSCRIBERS and int(events) % fanout.BURST == 0
        assert float(us_per_frame) > 0
        assert math.isfinite(float(ratio)) and float(ratio) > 0
        assert float(paired) == pytest.approx(float(ratio), abs=0.01)  # one repeat: the same
        if mode == "bare":
            assert float(ratio) == 1.0
    connections = {row[1]: row for row in _table(out, "subscribers mode")}
    assert set(connections) == set(available)
    for _n, _mode, us_conn, ratio, _paired, _kb, kb_ratio, _kb_paired in connections.values():
        assert float(us_conn) > 0 and math.isfinite(float(ratio))
        assert kb_ratio == "-" or math.isfinite(float(kb_ratio))
    (latency,) = _table(out, "mode subscribers events/s")
    assert latency[0] == "hub" and int(latency[3]) == 3 * 10  # 3 subscribers x 10 events
    assert 0 <= float(latency[4]) <= float(latency[5])
    for mode in set(fanout.MODES) - set(available):
        assert any(mode in note for note in results.notes)


def test_the_baseline_uses_the_hubs_heartbeat():
    assert server.HEARTBEAT_S == RealtimeSettings().heartbeat_s


def test_schedules():
    args = fanout.parse_args([])
    assert fanout.schedule_for("steady", 1000, args).burst == 1
    burst = fanout.schedule_for("burst", 1000, args)
    assert burst.burst == 50 and burst.gap_us > 0
    latency = fanout.schedule_for("latency", 1000, args)
    assert latency.period_us == 50_000 and latency.events == 200  # 20 events/s for 10 s


def test_a_frame_that_differs_from_the_common_one_aborts():
    mode = fanout.mode_table()["hub"]
    fanout.check_frame(mode, common.event_text(1, 123456789))
    with pytest.raises(fanout.BenchError):
        fanout.check_frame(mode, common.event_text(1, 123456789).replace("ACME", "ACMF"))
    socketio = fanout.mode_table()["socketio"]
    fanout.check_frame(socketio, '42["e",' + common.event_text(1, 5) + "]")


def test_paired_ratio_is_the_median_of_per_repeat_ratios():
    def run(mode: str, repeat: int, ns: int) -> fanout.Run:
        return fanout.Run(mode, "burst", 10, repeat, 10, 0, ns, 0, 0, 100, 0, 0)

    rows = fanout.summarize_cpu(
        [
            *(run("bare", 1, 1000), run("bare", 2, 2000), run("bare", 3, 4000)),
            *(run("hub", 1, 100), run("hub", 2, 1000), run("hub", 3, 400)),
        ]
    )
    hub = next(r for r in rows if r.mode == "hub")
    assert hub.ratio == pytest.approx(400 / 2000)  # median over median
    assert hub.paired == pytest.approx(0.1)  # median of 0.1, 0.5, 0.1


# ---------------------------------------------------------------- the load generator's check


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        pass


def loadgen_frame(payload: bytes) -> bytes:
    n = len(payload)
    return bytes((0x81, n)) + payload if n < 126 else bytes((0x81, 126)) + n.to_bytes(2, "big") + payload


def _client(kind: str = "json", expected: int = 3) -> tuple[loadgen.Worker, loadgen.Client, FakeTransport]:
    worker = loadgen.Worker()
    worker.reset(kind, expected, latency=False)
    client = loadgen.Client(worker, b"GET / HTTP/1.1\r\n\r\n")
    transport = FakeTransport()
    client.transport = transport  # type: ignore[assignment]
    worker.clients.append(client)
    worker.pending += 1
    handshake = (
        f"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {loadgen.WS_ACCEPT.decode()}\r\n\r\n"
    )
    client.data_received(handshake.encode())
    return worker, client, transport


def _events(*seqs: int) -> bytes:
    return b"".join(loadgen_frame(common.event_text(seq, 42).encode()) for seq in seqs)


async def test_the_load_generator_accepts_events_in_order_even_split_across_reads():
    worker, client, transport = _client()
    assert transport.written[-1].endswith(common.SUBSCRIBE_TEXT.encode())
    stream = (
        loadgen_frame(b'{"type":"hello"}') + loadgen_frame(common.SNAPSHOT_TEXT.encode()) + _events(1, 2, 3)
    )
    for i in range(0, len(stream), 7):  # frames cut anywhere, headers included
        client.data_received(stream[i : i + 7])
    assert worker.error is None and client.last_seq == 3 and worker.complete.is_set()
    assert worker.sample == common.event_text(1, 42).encode()


@pytest.mark.parametrize(
    "after_snapshot",
    [_events(2), _events(1, 1), _events(1, 3), _events(1, 2, 3, 4), loadgen_frame(b'{"type":"error"}')],
    ids=["gap", "duplicate", "hole", "too-many", "other"],
)
async def test_the_load_generator_fails_on_anything_else(after_snapshot: bytes):
    worker, client, _transport = _client()
    client.data_received(loadgen_frame(common.SNAPSHOT_TEXT.encode()) + after_snapshot)
    assert worker.error is not None and worker.failed.is_set()


async def test_the_load_generator_fails_on_an_event_before_the_snapshot_or_a_close():
    worker, client, _transport = _client()
    client.data_received(_events(1))
    assert worker.error is not None
    worker, client, _transport = _client()
    client.data_received(bytes((0x88, 2)) + (4008).to_bytes(2, "big"))
    assert worker.error is not None and "4008" in worker.error


async def test_the_load_generator_speaks_socketio():
    worker, client, transport = _client("socketio", expected=1)

    def sent() -> bytes:
        return transport.written[-1][6:]  # after the 2-byte header and the zero mask

    client.data_received(loadgen_frame(b'0{"sid":"x","pingInterval":25000}'))
    assert sent() == b"40"
    client.data_received(loadgen_frame(b'40{"sid":"y"}'))
    assert sent() == b'42["subscribe"]'
    client.data_received(loadgen_frame(b'42["s",' + common.SNAPSHOT_TEXT.encode() + b"]"))
    client.data_received(loadgen_frame(b"2"))
    assert sent() == b"3"
    client.data_received(loadgen_frame(b'42["e",' + common.event_text(1, 9).encode() + b"]"))
    assert worker.error is None and worker.complete.is_set()
    await asyncio.sleep(0)
    assert client.subscribed.done()


def test_schedule_runs_every_event_in_order():
    seen: list[int] = []

    async def publish(seq: int, t: int) -> None:
        assert t > 0
        seen.append(seq)

    assert asyncio.run(common.run_schedule(publish, 3, 2, 0, 0)) == 6
    assert seen == [1, 2, 3, 4, 5, 6]


def test_the_python_path_bench_runs_both_paths_and_prints_their_ratio(capsys):
    from scripts.bench import python_path

    results = python_path.main(["--subscribers", "20", "--events", "5", "--repeat", "2"])
    assert len(results["bare"]) == len(results["hub"]) == 2
    assert all(x > 0 for x in results["bare"] + results["hub"])
    out = capsys.readouterr().out
    assert "20 subscribers x 5 events" in out and out.splitlines()[-1].startswith("median")


def test_unchanged_at_scale_allows_the_noise_of_tiny_ratios_and_no_more():
    from scripts.bench.report import unchanged

    assert unchanged(0.036, [0.024, 0.031])  # bursts: within 0.02 of the worst
    assert not unchanged(0.06, [0.024, 0.031])  # twice the worst: changed
    assert unchanged(0.97, [0.90, 0.95])  # steady: within 10 % of the worst
    assert not unchanged(1.10, [0.90, 0.95])


# ---------------------------------------------------------------- the load generator's SSE client


def sse_event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


HELLO = b'{"type":"hello","connection_id":"abc1","transport":"sse","sse_secret":"s3cr-t_"}'


def _sse_client(
    monkeypatch: pytest.MonkeyPatch, *, chunked: bool, expected: int = 3
) -> tuple[loadgen.Worker, loadgen.SseClient, list[tuple[bytes, bytes]]]:
    posted: list[tuple[bytes, bytes]] = []

    async def subscribe(self: loadgen.SseClient, connection_id: bytes, secret: bytes) -> None:
        posted.append((connection_id, secret))

    monkeypatch.setattr(loadgen.SseClient, "_subscribe", subscribe)
    worker = loadgen.Worker()
    worker.reset("sse", expected, latency=False)
    client = loadgen.SseClient(worker, b"GET / HTTP/1.1\r\n\r\n", ("127.0.0.1", 1, "127.0.0.1", "/sse"))
    client.transport = FakeTransport()  # type: ignore[assignment]
    worker.clients.append(client)
    worker.pending += 1
    encoding = "Transfer-Encoding: chunked\r\n" if chunked else ""
    head = f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n{encoding}\r\n"
    client.data_received(head.encode())
    return worker, client, posted


def _sse_stream(chunked: bool, *seqs: int) -> bytes:
    events = [
        sse_event(HELLO),
        b": ping\n\n",
        sse_event(common.SNAPSHOT_TEXT.encode()),
        *(sse_event(common.event_text(seq, 42).encode()) for seq in seqs),
    ]
    return b"".join(chunk(e) for e in events) if chunked else b"".join(events)


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "until-close"])
async def test_the_sse_client_posts_its_subscribe_and_accepts_events_in_order_split_anywhere(
    monkeypatch: pytest.MonkeyPatch, chunked: bool
):
    worker, client, posted = _sse_client(monkeypatch, chunked=chunked)
    stream = _sse_stream(chunked, 1, 2, 3)
    for i in range(0, len(stream), 5):  # chunk headers, CRLFs and events cut anywhere
        client.data_received(stream[i : i + 5])
    await asyncio.sleep(0)
    assert posted == [(b"abc1", b"s3cr-t_")]
    assert worker.error is None and client.last_seq == 3 and worker.complete.is_set()
    assert worker.sample == common.event_text(1, 42).encode()  # what check_frame compares


@pytest.mark.parametrize(
    "tail",
    [
        sse_event(common.event_text(2, 1).encode()),
        sse_event(common.event_text(1, 1).encode()) * 2,
        b'event: close\ndata: {"code":4008,"reason":"slow"}\n\n',
    ],
    ids=["gap", "duplicate", "close"],
)
async def test_the_sse_client_fails_on_anything_else(monkeypatch: pytest.MonkeyPatch, tail: bytes):
    worker, client, _posted = _sse_client(monkeypatch, chunked=False)
    client.data_received(_sse_stream(False) + tail)
    assert worker.error is not None and worker.failed.is_set()


async def test_the_sse_client_fails_on_a_refused_stream_or_its_end(monkeypatch: pytest.MonkeyPatch):
    worker, client, _posted = _sse_client(monkeypatch, chunked=True)
    client.data_received(_sse_stream(True) + b"0\r\n\r\n")
    assert worker.error is not None and "ended" in worker.error
    worker = loadgen.Worker()
    worker.reset("sse", 1, latency=False)
    client = loadgen.SseClient(worker, b"", ("127.0.0.1", 1, "127.0.0.1", "/sse"))
    client.data_received(b'HTTP/1.1 403 Forbidden\r\nContent-Type: application/json\r\n\r\n{"error":"x"}')
    assert worker.error is not None and "403" in worker.error
