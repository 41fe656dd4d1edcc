"""The reconnect-storm benchmark (scripts/bench-storm) runs end to end at a tiny size.

What is asserted is what the bench measured, never how fast: every client got the
whole snapshot (the bench raises otherwise), the figures are there and sane, and the
hub called its snapshot provider once per storm - 40 subscribers of one topic version,
nothing published on it meanwhile: one call (one query with ``--database``). A hub
that built a snapshot per subscriber would report 40 here and fail.
"""

from __future__ import annotations

import asyncio
import math
import time

import pytest

from scripts.bench import fanout, loadgen, storm, storm_loadgen, storm_server
from tests.pg_support import pg_admin_url  # noqa: F401 - fixture

CLIENTS, LIVE = 40, 2
TINY = [
    "--clients",
    str(CLIENTS),
    "--live",
    str(LIVE),
    "--repeat",
    "1",
    "--timeout",
    "60",
    "--load-procs",
    "2",
]


def _table(out: str) -> dict[str, list[str]]:
    """The printed table's rows by mode."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["clients", "mode"])
    rows = {}
    for line in lines[start + 1 :]:
        if not line.strip():
            break
        rows[line.split()[1]] = line.split()
    return rows


def _check(results: storm.Results, out: str, modes: list[str]) -> None:
    assert [r.mode for r in results.rows] == modes
    printed = _table(out)
    assert list(printed) == modes
    for row in results.rows:
        (run,) = row.runs
        assert run.clients == CLIENTS
        # Provider calls: none for the floor (no provider), one per storm for the hub.
        assert run.calls == (0 if row.mode == storm.BASELINE else 1), row.mode
        assert run.cpu_ns > 0 and run.wall_ns > 0
        assert 0 < run.base_kb <= run.hwm_kb
        assert run.published >= 1  # and the live clients got every one, in order
        assert all(lat >= 0 for lat in run.latencies_us)
        assert len(run.latencies_us) == LIVE * run.live_events and run.live_events <= run.due + 1
        assert math.isnan(row.p99_ms) or 0 <= row.p50_ms <= row.p99_ms
        _clients, _mode, ms, ratio, paired, secs, *_rest = printed[row.mode]
        assert float(ms) > 0 and float(secs) > 0
        assert math.isfinite(float(ratio)) and float(paired) == pytest.approx(float(ratio), abs=0.01)
        assert printed[row.mode][12] == str(run.calls)
        assert run.gc_ns >= 0 and run.full_gcs >= 0
        assert float(printed[row.mode][-2]) == pytest.approx(row.gc_share * 100, abs=0.5)
        if row.mode == storm.BASELINE:
            assert float(ratio) == 1.0


def test_a_tiny_storm_resyncs_every_client_and_the_hub_builds_one_snapshot(
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = storm.run(TINY)
    _check(results, capsys.readouterr().out, ["floor", "hub"])


def test_with_a_database_the_provider_is_one_query_per_storm(
    capsys: pytest.CaptureFixture[str],
    pg_admin_url: str,  # noqa: F811
) -> None:
    results = storm.run([*TINY, "--modes", "floor,hub-pg", "--database", pg_admin_url])
    out = capsys.readouterr().out
    assert not results.notes, results.notes  # the database was there: hub-pg ran
    _check(results, out, ["floor", "hub-pg"])


def test_an_unreachable_database_skips_its_mode_and_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    results = storm.run([*TINY, "--clients", "5", "--database", "postgresql://postgres@127.0.0.1:1/postgres"])
    assert [r.mode for r in results.rows] == ["floor", "hub"]
    assert any("hub-pg skipped" in note for note in results.notes)
    assert "hub-pg skipped" in capsys.readouterr().out


# ---------------------------------------------------------------- the snapshot's bytes


def test_the_floor_sends_the_hubs_bytes_of_about_200_kb() -> None:
    items = storm_server.storm_items()
    assert len(items) == storm_server.ITEMS == 1_000
    assert storm_server.hub_payload_json(items) == storm_server.storm_payload_json().encode()
    assert 190_000 <= len(storm_server.storm_snapshot_text()) <= 205_000


# ---------------------------------------------------------------- the clients' checks


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        pass

    def get_extra_info(self, _name: str) -> None:
        return None


def ws_frame(payload: bytes, opcode: int = 0x81) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((opcode, n)) + payload
    if n < 1 << 16:
        return bytes((opcode, 126)) + n.to_bytes(2, "big") + payload
    return bytes((opcode, 127)) + n.to_bytes(8, "big") + payload


def _client(live: bool = False) -> tuple[storm_loadgen.Worker, storm_loadgen.Client, FakeTransport]:
    worker = storm_loadgen.Worker()
    client = storm_loadgen.Client(worker, b"GET / HTTP/1.1\r\n\r\n", live)
    transport = FakeTransport()
    client.transport = transport  # type: ignore[assignment]
    worker.pending += 1
    accept = loadgen.WS_ACCEPT.decode()
    client.data_received(
        f"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Accept: {accept}\r\n\r\n".encode()
    )
    return worker, client, transport


SNAPSHOT = storm_server.storm_snapshot_text().encode()
HELLO = ws_frame(b'{"type":"hello","connection_id":"c1"}')


@pytest.mark.parametrize("cut", [7, 1000, 65_536, 150_001])
async def test_a_storm_client_takes_the_snapshot_cut_anywhere(cut: int) -> None:
    worker, client, transport = _client()
    assert transport.written[-1].endswith(storm_server.SUBSCRIBE_STORM.encode())
    stream = HELLO + ws_frame(SNAPSHOT) + ws_frame(b"ping!", 0x89)
    for i in range(0, len(stream), cut):
        client.data_received(stream[i : i + cut])
    assert worker.error is None and client.held and worker.pending == 0 and worker.done_ns > 0
    assert transport.written[-1].endswith(b"ping!")  # answered with a pong


@pytest.mark.parametrize(
    "stream",
    [
        ws_frame(SNAPSHOT[:-2] + b"]}"),  # a byte differs at the end
        ws_frame(SNAPSHOT[:-1]),  # one byte short
        ws_frame(SNAPSHOT) + ws_frame(SNAPSHOT),  # a second snapshot
        ws_frame(SNAPSHOT) + ws_frame(b'{"type":"error","code":"x"}'),
        ws_frame(b'{"type":"error","code":"snapshot_failed"}'),
        ws_frame(SNAPSHOT) + ws_frame((4008).to_bytes(2, "big") + b"slow", 0x88),  # evicted
    ],
    ids=["differs", "short", "twice", "error-after", "error", "evicted"],
)
async def test_a_storm_client_fails_on_anything_else(stream: bytes) -> None:
    worker, client, _transport = _client()
    client.data_received(HELLO + stream)
    assert worker.error is not None
    worker.changed.clear()
    with pytest.raises(storm_loadgen.StormProtocolError):
        await worker.until(lambda: False, 1)


async def test_a_live_client_records_each_event_in_order_and_fails_on_a_gap() -> None:
    worker, client, transport = _client(live=True)
    assert transport.written[-1].endswith(storm_server.SUBSCRIBE_LIVE.encode())
    # Stamps as a server makes them: its monotonic clock (the same as ours), a moment ago.
    # (A stamp far in the past would not fit the int32 of microseconds the driver reads.)
    base = time.monotonic_ns() - 5_000_000
    events = b"".join(ws_frame(storm_server.live_event_text(s, base + s).encode()) for s in (1, 2))
    client.data_received(HELLO + ws_frame(storm_server.LIVE_SNAPSHOT_TEXT.encode()) + events)
    assert worker.error is None and client.last_seq == 2
    assert worker.stamps.tolist() == [base + 1, base + 2] and len(worker.latencies) == 2
    assert all(5_000 <= latency < 60_000_000 for latency in worker.latencies)  # µs
    client.data_received(ws_frame(storm_server.live_event_text(4, 5).encode()))
    assert "expected seq 3" in str(worker.error)


async def test_a_lost_connection_fails_unless_this_side_closed_it() -> None:
    worker, client, _transport = _client()
    client.connection_lost(None)
    assert worker.error is not None
    worker, client, _transport = _client()
    client.abort()
    client.connection_lost(None)
    assert worker.error is None


# ---------------------------------------------------------------- the driver's pieces


def test_a_password_never_reaches_the_output() -> None:
    assert storm.redacted("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert (
        storm.redacted("postgresql://postgres@127.0.0.1/postgres")
        == "postgresql://postgres@127.0.0.1/postgres"
    )


def test_ratios_are_to_the_floor_of_the_same_repeat() -> None:
    def run(mode: str, repeat: int, cpu_ms: int) -> storm.Run:
        return storm.Run(mode, 100, repeat, cpu_ms * 1_000_000, 10**9, 2048, 1024, 1, 10, [1000, 2000])

    rows = storm.summarize(
        [
            *(run("floor", 1, 100), run("floor", 2, 200), run("floor", 3, 400)),
            *(run("hub", 1, 110), run("hub", 2, 300), run("hub", 3, 440)),
        ]
    )
    hub = next(r for r in rows if r.mode == "hub")
    assert hub.cpu_ratio == pytest.approx(3.0 / 2.0)  # median over median
    assert hub.cpu_paired == pytest.approx(1.1)  # median of 1.1, 1.5, 1.1
    assert hub.time_ratio == hub.rss_ratio == 1.0 and hub.calls == [1]
    assert hub.p99_ms == pytest.approx(2.0)


def test_the_storm_server_answers_its_commands() -> None:
    async def main() -> list[str]:
        args = storm.parse_args(["--clients", "1", "--no-pin"])
        server = fanout.Server(storm.mode_table(None, None)["hub"], args.server_cpu, None)
        async with server:
            return [
                " ".join(await server.command(c, 30))
                for c in ("calls", "counts", "live 10000", "gc", "gctime", "stop", "reset", "calls")
            ]

    calls, counts, live, _collected, gctime, stopped, reset, calls_after = asyncio.run(main())
    # A full collection ran after `live` (the storm window): timed and counted.
    word, ns, full = gctime.split()
    assert word == "gctime" and int(ns) > 0 and int(full) >= 1
    assert (calls, counts, live, reset, calls_after) == (
        "calls 0",
        "counts 0 0",
        "live started",
        "reset",
        "calls 0",
    )
    assert stopped.startswith("stopped ") and int(stopped.split()[1]) >= 1
