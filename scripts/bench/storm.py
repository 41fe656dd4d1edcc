"""Reconnect-storm benchmark: N clients resync at once; the hub against a bare aiohttp floor, as ratios.

    scripts/bench-storm [--quick] [--clients 1000,5000,10000] [--repeat 3]
                        [--database postgresql://...] [--profile DIR] [--write-docs] [-v]

What a deploy or a network flap does to a server: every open tab reconnects and asks
for its snapshot at the same moment. Per run a fresh server (`scripts.bench.storm_server`)
starts; L "live" clients (default 50) subscribe to the small topic ``live``; then N
storm clients connect at once - from 40 loopback source addresses, 127.0.0.2-41, in
several load-generator processes (`scripts.bench.storm_loadgen`) that all start
connecting at one instant - and each subscribes to ``storm`` (a ~199 KB snapshot:
1,000 items shaped like the demo's ``sessions.state``) and reads it to its last byte,
compared byte for byte. Meanwhile the server publishes an event on ``live`` every
10 ms, stamped with `time.monotonic_ns()`; the live clients record publish->receive.

Modes (each a fresh server process per measurement; alternating within a repeat):
``floor``, bare aiohttp answering the subscribe with one precomputed frame of the
same bytes; ``hub``, the library with a provider returning the 1,000-item model;
``hub-pg`` (with ``--database URL``), the hub whose provider is an asyncpg query
reading the 1,000 rows from a table in a database of the bench's own,
``bench_storm_<pid>``, created on that server and dropped at the end (no other
database is touched; if the server does not answer, the mode is skipped, and said so).

Measured on the server process, from /proc (scripts.bench.fanout's readings): its CPU
time (all threads) from the storm's start until every storm client holds its
snapshot, per storm client; the wall time until then; its peak RSS (VmHWM) and its
RSS before the storm; the provider's calls during the storm (the server counts them);
and the live clients' p50/p99 publish->receive over the events published during the
storm. A run in which any client did not get the whole, correct snapshot, was closed
or evicted, or a live client missed or reordered an event, aborts the bench: no
figure is printed for it. Ratios are mode / floor: the ratio of the medians over the
repeats, and the median of the per-repeat pairs.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import math
import os
import pstats
import re
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.bench import storm_server
from scripts.bench.common import raise_nofile_limit
from scripts.bench.fanout import (
    ROOT,
    BenchError,
    LoadWorker,
    Mode,
    Server,
    _csv,
    _paired,
    _ratio,
    cpu_plan,
    machine,
    median,
    percentile,
    server_cpu_ns,
    server_rss_kb,
    settle,
)

MODES = ("floor", "hub", "hub-pg")
BASELINE = "floor"
#: The storm clients' source addresses (the server's per-address cap is 256 by default).
SOURCES = tuple(f"127.0.0.{i}" for i in range(2, 42))
LIVE_SOURCE = "127.0.0.42"
LIVE_PERIOD_US = 10_000
#: Storm clients per load-generator process (their count: N / this, rounded up).
CLIENTS_PER_PROC = 2_500
#: The storm load generators' niceness: on the one CPU they share with the live
#: clients' process, a live client that wakes for an event runs first.
STORM_NICE = 5
DOC = ROOT / "docs" / "benchmarks.md"
PNG = ROOT / "docs" / "benchmarks-storm.png"
BEGIN = "<!-- storm:begin (scripts/bench-storm --write-docs rewrites this part) -->"
END = "<!-- storm:end -->"
#: The issue's targets (issue 19): ratios to the floor at 5,000 and 10,000 clients,
#: and the live clients' p99 during a 5,000-client storm.
CPU_TARGET, TIME_TARGET, RSS_TARGET, P99_TARGET_MS, TARGET_FROM = 1.3, 1.5, 2.0, 100.0, 5_000
X = "\u00d7"  # the multiplication sign


# ---------------------------------------------------------------- modes and processes


def mode_table(database: str | None, dbname: str | None) -> dict[str, Mode]:
    argv = (sys.executable, "-m", "scripts.bench.storm_server", "--mode")
    path = "/api/realtime"
    table = {
        "floor": Mode("floor", (*argv, "floor"), "json", path, "aiohttp, one precomputed frame"),
        "hub": Mode("hub", (*argv, "hub"), "json", path, "aiohttp-realtime, provider in memory"),
    }
    if database is not None and dbname is not None:
        pg = (*argv, "hub", "--database", database, "--dbname", dbname)
        table["hub-pg"] = Mode("hub-pg", pg, "json", path, "aiohttp-realtime, provider an asyncpg query")
    return table


class StormWorker(LoadWorker):
    """A `scripts.bench.storm_loadgen` process (the fan-out's `LoadWorker`, another module)."""

    def __init__(self, index: int, cpu: int | None, nice: int) -> None:
        super().__init__(index, cpu)
        self.nice = nice

    async def start(self) -> None:
        argv = [sys.executable, "-m", "scripts.bench.storm_loadgen"]
        if self.cpu is not None:
            argv.append(str(self.cpu))
        if self.nice:
            argv += ["--nice", str(self.nice)]
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 28,
        )

    async def ask(self, cmd: dict[str, object], timeout: float, what: str) -> dict[str, Any]:
        reply = await self.call(cmd, timeout)
        if "error" in reply:
            raise BenchError(f"{what}: {reply['error']}")
        return reply

    def cpu_ns(self) -> int:
        return server_cpu_ns(self.proc.pid) if self.proc is not None else 0


def status_kb(pid: int, name: str) -> int:
    """A ``kB`` field of /proc/<pid>/status: VmHWM (peak RSS), VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    raise BenchError(f"no {name} for pid {pid}")


# ---------------------------------------------------------------- the throwaway database


async def create_database(url: str) -> str:
    """``bench_storm_<pid>`` on `url`'s server, with the table the hub-pg provider reads."""
    import asyncpg

    name = f"bench_storm_{os.getpid()}"
    admin = await asyncio.wait_for(asyncpg.connect(url), 10)
    try:
        await admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 ENCODING 'UTF8'")
    finally:
        await admin.close()
    try:
        conn = await asyncio.wait_for(asyncpg.connect(url, database=name), 10)
        try:
            await conn.execute(
                f"CREATE TABLE {storm_server.TABLE} (n int PRIMARY KEY, id text NOT NULL, "
                "title text NOT NULL, state text NOT NULL, created_at timestamptz NOT NULL, "
                "updated_at timestamptz NOT NULL)"
            )
            rows = [
                (
                    n,
                    i["id"],
                    i["title"],
                    i["state"],
                    datetime.datetime.fromisoformat(i["created_at"]),
                    datetime.datetime.fromisoformat(i["updated_at"]),
                )
                for n, i in enumerate(storm_server.storm_items())
            ]
            await conn.copy_records_to_table(storm_server.TABLE, records=rows)
        finally:
            await conn.close()
    except BaseException:
        await drop_database(url, name)
        raise
    return name


async def drop_database(url: str, name: str) -> None:
    import asyncpg

    admin = await asyncio.wait_for(asyncpg.connect(url), 10)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


def redacted(url: str) -> str:
    """`url` without its password, for what is printed and written."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


# ---------------------------------------------------------------- one run


@dataclass
class Run:
    mode: str
    clients: int
    repeat: int
    #: Server CPU from the storm's start until every storm client held its snapshot.
    cpu_ns: int
    #: Wall time from the storm's start until the last storm client held its snapshot.
    wall_ns: int
    #: Peak RSS (VmHWM) at the end, and RSS before the storm (live clients connected).
    hwm_kb: int
    base_kb: int
    #: Storm provider calls during the storm (the floor has none).
    calls: int
    #: Live events published during the run, and the live clients' latencies (µs) of
    #: those published from the storm's start until its end.
    published: int
    latencies_us: list[int] = field(default_factory=list, repr=False)
    #: The storm load generators' CPU time over the storm (not measured: shown).
    clients_ns: int = 0
    #: How long after the agreed instant the last load generator began connecting.
    late_ns: int = 0
    #: Live events published from the storm's start until its end (each once, whatever
    #: the number of live clients): fewer than `due` when the server's loop was too busy
    #: to publish on time - its delay before publishing is not in the latencies.
    live_events: int = 0
    #: Time the server's garbage collector ran during the storm window (from the live
    #: clients' publishing to its end), and its full collections then.
    gc_ns: int = 0
    full_gcs: int = 0
    #: For `fanout._paired`, which pairs runs by workload and repeat.
    workload: str = "storm"

    @property
    def ms_per_client(self) -> float:
        return self.cpu_ns / 1e6 / self.clients

    @property
    def seconds(self) -> float:
        return self.wall_ns / 1e9

    @property
    def peak_mb(self) -> float:
        return self.hwm_kb / 1024

    @property
    def due(self) -> int:
        """Live events the 10 ms schedule asked for during the storm."""
        return self.wall_ns // (LIVE_PERIOD_US * 1000)

    @property
    def clients_busy(self) -> float:
        """The storm load generators' CPU use over the storm, in cores."""
        return self.clients_ns / self.wall_ns if self.wall_ns else math.nan


def procs_for(n: int, args: argparse.Namespace) -> int:
    return int(args.load_procs) if args.load_procs else max(1, math.ceil(n / CLIENTS_PER_PROC))


async def run_once(
    mode: Mode, n: int, repeat: int, workers: list[StormWorker], live: StormWorker, args: argparse.Namespace
) -> Run:
    what = f"{mode.name}, {n} clients"
    procs = min(procs_for(n, args), len(workers))
    active = workers[:procs]
    timeout = args.timeout or 60 + n * 0.03
    profile = None
    if args.profile is not None:
        profile = args.profile / f"{mode.name}-{n}-r{repeat}.prof"
    async with Server(mode, args.server_cpu, profile) as server:
        pid, port = server.pid, server.port
        try:
            # A throw-away storm client and live client first, so that one-time costs (lazy
            # imports, the first handshake, the first snapshot's encoders) are not counted;
            # then the server forgets the snapshot it built, as a restarted one has none.
            one = {"cmd": "storm", "port": port, "count": 1, "sources": SOURCES[:1], "start_at": 0}
            await active[0].ask({**one, "timeout": 60}, 60, f"{what}: warm-up")
            await live.ask({"cmd": "live", "port": port, "count": 1, "source": LIVE_SOURCE}, 60, what)
            await asyncio.gather(active[0].call({"cmd": "close"}, 30), live.call({"cmd": "close"}, 30))
            await server.command("reset", 30)
            cmd = {"cmd": "live", "port": port, "count": args.live, "source": LIVE_SOURCE}
            await live.ask(cmd, 60, f"{what}: live clients")
            # A full collection in every mode: start-up and connects left one due (see
            # scripts.bench.fanout), which whichever mode allocates first would pay.
            await server.command("gc", 60)
            await settle(pid)
            base_kb = server_rss_kb(pid)
            shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
            start_at = time.monotonic_ns() + int(0.3e9) + max(shares) * 40_000  # sockets bound by then
            storm = asyncio.gather(
                *(
                    w.ask(
                        {
                            "cmd": "storm",
                            "port": port,
                            "count": share,
                            # Worker i's client j uses address (i + j * procs) mod 40: all 40 in use.
                            "sources": [SOURCES[(i + j * procs) % len(SOURCES)] for j in range(len(SOURCES))],
                            "start_at": start_at,
                            "timeout": timeout,
                        },
                        timeout,
                        f"{what}: storm",
                    )
                    for i, (w, share) in enumerate(zip(active, shares, strict=True))
                )
            )
            try:
                await server.command(f"live {LIVE_PERIOD_US}", 30)
                await asyncio.sleep(max(0.0, (start_at - time.monotonic_ns()) / 1e9 - 0.002))
                cpu_start, clients_start = server_cpu_ns(pid), sum(w.cpu_ns() for w in active)
            finally:
                replies = await storm
            cpu_end, clients_end = server_cpu_ns(pid), sum(w.cpu_ns() for w in active)
            end_ns = max(int(r["done_ns"]) for r in replies)
            published = int((await server.command("stop", 30))[1])
            counts = await server.command("counts", 30)
            calls = int((await server.command("calls", 30))[1])
            gc_ns, full_gcs = (int(x) for x in (await server.command("gctime", 30))[1:3])
            hwm_kb = status_kb(pid, "VmHWM")
            got = await live.ask({"cmd": "wait", "events": published, "timeout": 60}, 60, f"{what}: live")
            for w in active:
                await w.ask({"cmd": "check"}, 30, f"{what}: after the storm")
        finally:
            await asyncio.gather(
                *(w.call({"cmd": "close"}, 30) for w in [*active, live]), return_exceptions=True
            )
    if counts[1:] != [str(n), str(args.live)]:
        raise BenchError(f"{what}: the server counts {counts[1:]} storm and live subscribers")
    stamps = memoryview(base64.b64decode(str(got["stamps"]))).cast("q").tolist()
    latencies = memoryview(base64.b64decode(str(got["latencies"]))).cast("i").tolist()
    during = [(t, lat) for t, lat in zip(stamps, latencies, strict=True) if start_at <= t <= end_ns]
    return Run(
        mode.name,
        n,
        repeat,
        cpu_end - cpu_start,
        end_ns - start_at,
        hwm_kb,
        base_kb,
        calls,
        published,
        [lat for _t, lat in during],
        clients_end - clients_start,
        max(int(r["late_ns"]) for r in replies),
        len({t for t, _lat in during}),
        gc_ns,
        full_gcs,
    )


# ---------------------------------------------------------------- summaries


@dataclass
class Row:
    """One mode at one N: medians over the repeats, ratios to the floor."""

    clients: int
    mode: str
    ms_per_client: float
    cpu_ratio: float
    cpu_paired: float
    seconds: float
    time_ratio: float
    time_paired: float
    peak_mb: float
    rss_ratio: float
    rss_paired: float
    base_mb: float
    calls: list[int]
    live_frames: int
    live_events: float
    live_due: float
    p50_ms: float
    p99_ms: float
    clients_busy: float
    runs: list[Run]
    #: The garbage collector's time as a share of the server's CPU, and its full
    #: collections, per storm (medians).
    gc_share: float = math.nan
    full_gcs: float = math.nan


def summarize(runs: list[Run]) -> list[Row]:
    groups: dict[tuple[int, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.clients, r.mode), []).append(r)
    rows = []
    for (n, mode), group in groups.items():
        base = groups.get((n, BASELINE), [])

        def med(value: str, of: list[Run]) -> float:
            return median([getattr(r, value) for r in of])

        latencies = sorted(lat for r in group for lat in r.latencies_us)
        rows.append(
            Row(
                n,
                mode,
                med("ms_per_client", group),
                _ratio(med("ms_per_client", group), med("ms_per_client", base)),
                _paired(group, base, "ms_per_client"),  # type: ignore[arg-type]
                med("seconds", group),
                _ratio(med("seconds", group), med("seconds", base)),
                _paired(group, base, "seconds"),  # type: ignore[arg-type]
                med("peak_mb", group),
                _ratio(med("peak_mb", group), med("peak_mb", base)),
                _paired(group, base, "peak_mb"),  # type: ignore[arg-type]
                median([r.base_kb / 1024 for r in group]),
                sorted({r.calls for r in group}),
                len(latencies),
                med("live_events", group),
                med("due", group),
                percentile(latencies, 0.50) / 1000,
                percentile(latencies, 0.99) / 1000,
                med("clients_busy", group),
                group,
                median([r.gc_ns / r.cpu_ns if r.cpu_ns else math.nan for r in group]),
                med("full_gcs", group),
            )
        )
    return sorted(rows, key=lambda r: (r.clients, MODES.index(r.mode)))


@dataclass
class Results:
    rows: list[Row]
    notes: list[str]
    args: argparse.Namespace
    seconds: float = 0.0
    library: str = ""


def _f(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def calls_text(calls: list[int]) -> str:
    return ",".join(str(c) for c in calls)


def events_text(r: Row) -> str:
    """Live events published during the storm / due on the 10 ms schedule (medians)."""
    return f"{r.live_events:.0f}/{r.live_due:.0f}"


def format_results(results: Results) -> str:
    args = results.args
    size = len(storm_server.storm_snapshot_text())
    lines = [
        f"reconnect storm: N clients at once, each subscribing to a {size / 1000:.0f} KB snapshot, while "
        f"{args.live} live clients get an event every {LIVE_PERIOD_US // 1000} ms; median of {args.repeat}; "
        f"ratio = mode / {BASELINE} (of the medians; median of the per-repeat pairs)",
        f"{'clients':>7} {'mode':<6} {'ms/client':>9} {'ratio':>6} {'paired':>6} {'resync s':>8} "
        f"{'ratio':>6} {'paired':>6} {'peak MB':>7} {'ratio':>6} {'paired':>6} {'base MB':>7} "
        f"{'calls':>5} {'live p50':>8} {'live p99':>8} {'events':>9} {'clients':>7} {'gc %':>5} {'full':>4}",
    ]
    for r in results.rows:
        lines.append(
            f"{r.clients:>7} {r.mode:<6} {r.ms_per_client:>9.3f} {_f(r.cpu_ratio):>6} {_f(r.cpu_paired):>6} "
            f"{r.seconds:>8.2f} {_f(r.time_ratio):>6} {_f(r.time_paired):>6} {r.peak_mb:>7.0f} "
            f"{_f(r.rss_ratio):>6} {_f(r.rss_paired):>6} {r.base_mb:>7.0f} {calls_text(r.calls):>5} "
            f"{_f(r.p50_ms):>8} {_f(r.p99_ms):>8} {events_text(r):>9} {_f(r.clients_busy):>7} "
            f"{r.gc_share * 100:>5.0f} {r.full_gcs:>4.0f}"
        )
    lines += [
        "",
        "ms/client: server CPU (all threads) from the storm's start until every client held its snapshot, "
        "per client; resync s: wall time until then; peak MB: VmHWM; base MB: RSS before the storm; "
        "calls: the storm provider's calls per storm (each distinct value seen); live p50/p99: ms, "
        "publish->receive of the events published during the storm; events: live events published "
        "during the storm / due every 10 ms (fewer: the server's loop was too busy to publish on "
        "time, a delay the latencies do not hold); clients: the storm load "
        "generators' CPU use in cores (near 1.0: they, not the server, set the pace); gc %: "
        "the server's garbage collections as a share of its CPU during the storm; full: its "
        "full (oldest-generation) collections per storm.",
    ]
    lines.extend(results.notes)
    return "\n".join(lines)


# ---------------------------------------------------------------- docs


def _x(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}"


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def results_markdown(results: Results, machine: dict[str, str]) -> str:
    from scripts.bench import report

    args = results.args
    today = datetime.date.today().isoformat()
    argv = " ".join(shlex.quote(redacted(a)) for a in args.argv) or "(defaults)"
    size = len(storm_server.storm_snapshot_text())
    modes = [m for m in MODES if any(r.mode == m for r in results.rows)]
    out = [
        BEGIN,
        "",
        "## Reconnect storm: `scripts/bench-storm`",
        "",
        "```",
        "scripts/bench-storm                 # 1,000, 5,000 and 10,000 clients, 3 repeats",
        "scripts/bench-storm --quick         # smoke run: 200 clients, once",
        "scripts/bench-storm --clients 1000,5000 --repeat 1 -v",
        "scripts/bench-storm --database postgresql://postgres@127.0.0.1:5432/postgres   # adds hub-pg",
        "scripts/bench-storm --clients 5000 --repeat 1 --profile /tmp/prof   # cProfile hot spots",
        "scripts/bench-storm --write-docs    # also rewrite this section and docs/benchmarks-storm.png",
        "```",
        "",
        "After a deploy or a network flap every open tab reconnects and asks for its snapshot at "
        "the same moment (issue 19). Per run a fresh server starts; "
        f"{args.live} live clients subscribe to a small topic; then N clients connect at once from 40 "
        "loopback addresses, subscribe to a topic whose snapshot is "
        f"{size:,} bytes (1,000 items shaped like the demo's `sessions.state`) and read it to the last "
        "byte, each compared byte for byte with the expected frame; meanwhile the server publishes an "
        f"event to the live clients every {LIVE_PERIOD_US // 1000} ms. `floor` is bare aiohttp answering "
        "the subscribe with one precomputed frame of the same bytes (`ws.send_str`); `hub` is this "
        "library with a provider returning the 1,000-item model; `hub-pg` (with `--database URL`) the "
        "hub whose provider is an asyncpg query reading the 1,000 rows from a database of the bench's "
        "own (`bench_storm_<pid>`, dropped at the end). Each mode runs in a fresh server process per "
        "measurement, the modes alternating within a repeat; the load generators run in separate "
        "processes on the other CPU. Measured on the server process from /proc: its CPU time (all "
        "threads) from the storm's start until every client holds its snapshot, per client; the wall "
        "time until then; its peak RSS (VmHWM); the provider's calls during the storm (the server "
        "counts them); and the live clients' publish→receive over the events published during the "
        "storm, and how many were published of those due every 10 ms (a server whose loop is too "
        "busy publishes late; that delay is not in the latencies). PostgreSQL's own CPU and memory "
        "(`hub-pg`) are not counted, only the server process's. "
        "A client that does not get the whole, correct snapshot, or is closed or evicted, "
        "aborts the bench with an error instead of a figure.",
        "",
        f"Measured {today} with `scripts/bench-storm {argv}` ({results.seconds / 60:.1f} min), "
        f"library at {results.library or report.library_state()}.",
        "",
        f"Machine: {machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
        f"Linux {machine.get('kernel', '?')}; Python {machine.get('python', '?')}, "
        f"aiohttp {machine.get('aiohttp', '?')}, pydantic {machine.get('pydantic', '?')}. "
        + (
            "Server pinned to one CPU, load generators and driver to the other. "
            if args.server_cpu is not None
            else "No CPU pinning. "
        )
        + f"Medians of {args.repeat} repeat(s).",
        "",
        "Ratios to `floor`: *ratio of the medians* / *median of the per-repeat ratios*; "
        "absolute figures in brackets.",
        "",
        "| clients | mode | server CPU per client | time until all resynced | peak RSS (VmHWM) "
        "| RSS before | provider calls per storm | live p50 / p99 | live events published / due "
        "| garbage collection: share of CPU (full collections) |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results.rows:
        if r.mode == BASELINE:
            cpu, wall, peak = f"{r.ms_per_client:.3f} ms", f"{r.seconds:.2f} s", f"{r.peak_mb:.0f} MB"
            calls = "-"
        else:
            cpu = f"{_x(r.cpu_ratio)} / {_x(r.cpu_paired)} ({r.ms_per_client:.3f} ms)"
            wall = f"{_x(r.time_ratio)} / {_x(r.time_paired)} ({r.seconds:.2f} s)"
            peak = f"{_x(r.rss_ratio)} / {_x(r.rss_paired)} ({r.peak_mb:.0f} MB)"
            calls = calls_text(r.calls)
        out.append(
            f"| {r.clients:,} | {r.mode} | {cpu} | {wall} | {peak} | {r.base_mb:.0f} MB | {calls} "
            f"| {_x(r.p50_ms)} / {_x(r.p99_ms)} ms | {events_text(r)} "
            f"| {r.gc_share * 100:.0f}% ({r.full_gcs:.0f}) |"
        )
    busy = [r.clients_busy for r in results.rows if not math.isnan(r.clients_busy)]
    if busy:
        out += [
            "",
            f"The storm load generators used {min(busy):.2f}-{max(busy):.2f} of their core during the "
            "storms (near 1.0, the clients, not the server, set the pace of the time until resynced).",
        ]
    out += ["", "**The issue's targets** (issue 19, against the floor, this run):", ""]
    out += targets_markdown(results, modes)
    for note in results.notes:
        out += ["", f"_{note}_"]
    out += ["", "![reconnect storm, ratios to the floor](benchmarks-storm.png)", "", END]
    return "\n".join(out)


def targets_markdown(results: Results, modes: list[str]) -> list[str]:
    lines = ["| target | mode | measured | verdict |", "|---|---|---|---|"]
    for r in results.rows:
        if r.mode == BASELINE or r.clients < TARGET_FROM:
            continue
        for label, target, ratio, paired in (
            ("server CPU per client", CPU_TARGET, r.cpu_ratio, r.cpu_paired),
            ("time until all resynced", TIME_TARGET, r.time_ratio, r.time_paired),
            ("peak RSS", RSS_TARGET, r.rss_ratio, r.rss_paired),
        ):
            ok = max(ratio, paired) <= target
            lines.append(
                f"| {label} ≤ {target}{X} at {r.clients:,} | {r.mode} | {_x(ratio)} / {_x(paired)} "
                f"| {_verdict(ok)} |"
            )
    for r in results.rows:
        if r.mode != BASELINE:
            lines.append(
                f"| provider calls per storm ≤ 1 (one topic version) at {r.clients:,} | {r.mode} "
                f"| {calls_text(r.calls)} | {_verdict(max(r.calls) <= 1)} |"
            )
    for r in results.rows:
        if r.mode != BASELINE and r.clients == TARGET_FROM:
            lines.append(
                f"| live p99 ≤ {P99_TARGET_MS:g} ms during a {r.clients:,}-client storm | {r.mode} "
                f"| {_x(r.p99_ms)} ms | {_verdict(r.p99_ms <= P99_TARGET_MS)} |"
            )
    return lines


def render_png(results: Results, path: Path = PNG) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in results.rows if r.mode != BASELINE]
    sizes = sorted({r.clients for r in rows})
    modes = [m for m in MODES if any(r.mode == m for r in rows)]
    figures = (
        ("server CPU per client", "cpu_ratio", CPU_TARGET),
        ("time until all resynced", "time_ratio", TIME_TARGET),
        ("peak RSS", "rss_ratio", RSS_TARGET),
    )
    colors = {
        ("hub", 0): "#1f77b4",
        ("hub", 1): "#ff7f0e",
        ("hub", 2): "#2ca02c",
        ("hub-pg", 0): "#aec7e8",
        ("hub-pg", 1): "#ffbb78",
        ("hub-pg", 2): "#98df8a",
    }
    fig, (ax, lat) = plt.subplots(1, 2, figsize=(12, 5.2), dpi=110, gridspec_kw={"width_ratios": [3, 1.2]})
    bars = len(figures) * len(modes)
    width = 0.8 / max(1, bars)
    top = 1.0
    for j, n in enumerate(sizes):
        k = 0
        for f, (label, attr, target) in enumerate(figures):
            for mode in modes:
                row = next((r for r in rows if r.clients == n and r.mode == mode), None)
                x = j + (k - (bars - 1) / 2) * width
                k += 1
                if row is None or math.isnan(getattr(row, attr)):
                    continue
                y = getattr(row, attr)
                top = max(top, y)
                name = f"{label} ({mode})"
                ax.bar(x, y, width, color=colors.get((mode, f), "#7f7f7f"), label=name if j == 0 else None)
                ax.annotate(
                    f"{y:.2f}",
                    (x, y),
                    ha="center",
                    va="bottom",
                    fontsize=7,
                    xytext=(0, 2),
                    textcoords="offset points",
                )
                if n >= TARGET_FROM:
                    top = max(top, target)
                    ax.hlines(
                        target, x - width / 2, x + width / 2, colors="#b22222", linestyles=":", linewidth=1.5
                    )
    ax.axhline(1.0, color="black", linewidth=1, linestyle="--", label="1.0 = the floor (bare aiohttp)")
    ax.plot([], [], color="#b22222", linestyle=":", label=f"issue 19's target (from {TARGET_FROM:,} clients)")
    ax.set_ylim(0, top * 1.25)
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels([f"{n:,} clients at once" for n in sizes], fontsize=8)
    ax.set_ylabel("mode / floor (lower is better)")
    ax.set_title("Reconnect storm: cost relative to bare aiohttp sending one precomputed frame", fontsize=10)
    ax.legend(ncol=2, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    every = [m for m in MODES if any(r.mode == m for r in results.rows)]
    width = 0.8 / max(1, len(every))
    for j, n in enumerate(sizes):
        for i, mode in enumerate(every):
            row = next((r for r in results.rows if r.clients == n and r.mode == mode), None)
            if row is None or math.isnan(row.p99_ms):
                continue
            x = j + (i - (len(every) - 1) / 2) * width
            lat.bar(
                x,
                row.p99_ms,
                width,
                color=("#7f7f7f", "#1f77b4", "#aec7e8")[i % 3],
                label=mode if j == 0 else None,
            )
            lat.annotate(
                f"{row.p99_ms:.0f}",
                (x, row.p99_ms),
                ha="center",
                va="bottom",
                fontsize=7,
                xytext=(0, 2),
                textcoords="offset points",
            )
    lat.axhline(
        P99_TARGET_MS, color="#b22222", linestyle=":", linewidth=1.5, label=f"{P99_TARGET_MS:g} ms target"
    )
    lat.set_xticks(range(len(sizes)))
    lat.set_xticklabels([f"{n:,}" for n in sizes], fontsize=8)
    lat.set_ylabel("live clients' p99 publish→receive during the storm (ms)")
    lat.set_title("Live clients during the storm", fontsize=10)
    lat.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), frameon=False, ncol=2)
    lat.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)


def write_docs(results: Results, machine: dict[str, str]) -> None:
    from scripts.bench import report

    report.write_markdown(results_markdown(results, machine), DOC, BEGIN, END)
    render_png(results)
    print(f"wrote {DOC.relative_to(ROOT)} (reconnect storm section) and {PNG.relative_to(ROOT)}", flush=True)


# ---------------------------------------------------------------- the whole bench


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench-storm",
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="a smoke run: 200 clients, 5 live clients, once")
    add("--clients", type=lambda v: _csv(v, kind=int), help="storm sizes (default 1000,5000,10000)")
    add("--repeat", type=int, help="runs per size and mode, alternating modes; medians (default 3)")
    add("--live", type=int, help="live clients connected before the storm (default 50; --quick 5)")
    add("--modes", type=lambda v: _csv(v, MODES), help="floor,hub[,hub-pg] (default: floor,hub, +hub-pg)")
    add("--database", metavar="URL", help="PostgreSQL (e.g. postgresql://postgres@127.0.0.1:5432/postgres)")
    add("--timeout", type=float, help="seconds a storm may take (default 60 + 0.03 per client)")
    add("--load-procs", type=int, help=f"storm load-generator processes (default N/{CLIENTS_PER_PROC:,})")
    add("--no-pin", action="store_true", help="do not pin the server and the clients to separate CPUs")
    add("--profile", type=Path, metavar="DIR", help="profile each storm (cProfile) into DIR; print hot spots")
    add("--write-docs", action="store_true", help="rewrite the section in docs/benchmarks.md and its chart")
    add("-v", "--verbose", action="store_true", help="print every run")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    q = args.quick
    if args.clients is None:
        args.clients = [200] if q else [1_000, 5_000, 10_000]
    if args.repeat is None:
        args.repeat = 1 if q else 3
    if args.live is None:
        args.live = 5 if q else 50
    if args.modes is None:
        args.modes = ["floor", "hub", *(["hub-pg"] if args.database else [])]
    if "hub-pg" in args.modes and not args.database:
        parser.error("hub-pg needs --database URL")
    if BASELINE not in args.modes:
        parser.error(f"--modes must include the baseline, {BASELINE}")
    if min([args.repeat, args.live, *args.clients]) < 1 or (
        args.load_procs is not None and args.load_procs < 1
    ):
        parser.error("counts must be positive")
    args.server_cpu, args.load_cpu = cpu_plan(args.no_pin)
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    return args


def _log(args: argparse.Namespace, message: str) -> None:
    if args.verbose:
        print(message, file=sys.stderr, flush=True)


async def bench(args: argparse.Namespace) -> Results:
    raise_nofile_limit()
    notes: list[str] = []
    modes = list(args.modes)
    dbname = None
    if "hub-pg" in modes:
        try:
            dbname = await create_database(args.database)
        except Exception as exc:
            note = f"note: hub-pg skipped: PostgreSQL at {redacted(args.database)} unusable ({exc!r})"
            notes.append(note)
            print(note, file=sys.stderr, flush=True)
            modes.remove("hub-pg")
    table = mode_table(args.database, dbname)
    runs: list[Run] = []
    procs = max(procs_for(n, args) for n in args.clients)
    workers = [StormWorker(i, args.load_cpu, STORM_NICE) for i in range(procs)]
    live = StormWorker(procs, args.load_cpu, 0)
    try:
        await asyncio.gather(*(w.start() for w in [*workers, live]))
        for rep in range(1, args.repeat + 1):
            for n in args.clients:
                for mode in modes:  # alternated, so drifting machine load hits every mode alike
                    run = await run_once(table[mode], n, rep, workers, live, args)
                    runs.append(run)
                    p99 = percentile(sorted(run.latencies_us), 0.99) / 1000
                    _log(
                        args,
                        f"  r{rep} n={n:<6} {mode:<6} {run.ms_per_client:6.3f} ms/client  "
                        f"{run.seconds:6.2f} s  "
                        f"peak {run.peak_mb:5.0f} MB (base {run.base_kb / 1024:.0f})  calls {run.calls}  "
                        f"live p99 {p99:6.1f} ms ({len(run.latencies_us)} frames)  "
                        f"clients {run.clients_busy:.2f} cores  late {run.late_ns / 1e6:.0f} ms",
                    )
    finally:
        await asyncio.gather(*(w.stop() for w in [*workers, live]), return_exceptions=True)
        if dbname is not None:
            await drop_database(args.database, dbname)
    return Results(summarize(runs), notes, args)


def run(argv: list[str] | None = None) -> Results:
    args = parse_args(argv)
    from scripts.bench import report

    library = report.library_state()
    started = time.monotonic()
    results = asyncio.run(bench(args))
    results.seconds = time.monotonic() - started
    results.library = library
    print(format_results(results))
    print(
        f"\n({results.seconds:.0f}s; server CPU from /proc/<pid>/task/*/schedstat, peak RSS from VmHWM; "
        "every client of every run got the whole snapshot, byte for byte, and none was closed)",
        flush=True,
    )
    if args.write_docs:
        write_docs(results, machine())
    if args.profile is not None:
        print_profiles(args.profile, results)
    return results


def print_profiles(directory: Path, results: Results) -> None:
    """The last repeat's hot spots per mode and size (cProfile inflates Python-heavy
    paths: compare modes with one another, not with the unprofiled figures)."""
    for path in sorted(directory.glob(f"*-r{results.args.repeat}.prof")):
        print(f"\n== hot spots of the storm ({path.stem}), by own time; 'poll' is the loop waiting")
        pstats.Stats(str(path), stream=sys.stdout).sort_stats("tottime").print_stats(20)


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except BenchError as exc:
        print(f"bench-storm: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
