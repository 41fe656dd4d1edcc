"""Fan-out benchmark: the realtime hub and its peers against a bare aiohttp send loop, as ratios.

    scripts/bench-fanout [--quick] [--modes ...] [--workloads ...] [--subscribers ...] [--write-docs]

Modes (each a server in scripts/bench/, started as a fresh process for every
measurement; modes alternate within a repeat): ``bare`` (the baseline: aiohttp and
``await ws.send_str`` in a loop), ``hub`` (this library), ``hub-sse`` (this
library's Server-Sent Events transport: the same hub, its clients on
``GET /api/realtime/sse`` and their subscribe POSTed), and the peers
``websockets`` (python-websockets' `broadcast`), ``socketio`` (python-socketio, a
room, `emit`) and ``node-ws`` (Node's ws package; skipped with a note when node or
its npm install is missing).

Per run a server starts; load-generator processes (`scripts.bench.loadgen`, raw
asyncio clients) open N connections, subscribe and get their snapshot; then one
command makes the server publish on a schedule (`scripts.bench.common`) while every
client checks it receives exactly events 1..K in order (anything else aborts the
whole bench). Measured on the server process only, from /proc:

- fan-out CPU per delivered frame: the server's CPU time (all threads) from the
  publish command until every client has every event, over N*K;
- connect CPU per connection: the server's CPU time while the N clients connect,
  subscribe and receive their snapshot, over N;
- RSS per idle subscribed connection: VmRSS after they settled minus before, over N;
- publish->receive latency (its own runs): each event carries the publisher's
  `time.monotonic_ns()`; every client records arrival minus stamp.

CPU figures are reported as ratios to ``bare`` in the same bench: the ratio of the
medians over repeats, and the median of the paired ratios (each repeat's run of a
mode over bare's run of the same repeat, workload and size). The client side is
never timed (a Python client saturates long before a server does).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import platform
import pstats
import re
import shutil
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from scripts.bench.common import EVENT_PREFIX, event_text, raise_nofile_limit

ROOT = Path(__file__).resolve().parents[2]
NODE_DIR = ROOT / "scripts" / "bench" / "node"
MODES = ("bare", "hub", "hub-sse", "websockets", "socketio", "node-ws")
BASELINE = "bare"
WORKLOADS = ("steady", "burst")
BURST = 50
#: Frames per fan-out run (a run's events are about this over N, within bounds).
STEADY_FRAMES, BURST_FRAMES = 12_000, 25_000
#: The steady rate: an event every 60 us per subscriber (~16,700 frames/s at any N), which
#: keeps the baseline server near a third of its core (each event is written on its own)
#: and the load generators, at ~35 us of CPU per read here, within their core.
STEADY_US_PER_SUBSCRIBER = 60
CONNECT_CONCURRENCY = 64  # connections in flight per load-generator process


class BenchError(Exception):
    """The run did not deliver what it should have; no figure is printed for it."""


# ---------------------------------------------------------------- modes


@dataclass(frozen=True)
class Mode:
    name: str
    argv: tuple[str, ...]
    kind: str  # the load generator's protocol: "json", "sse" or "socketio"
    path: str
    label: str  # what it is, for the docs


def mode_table() -> dict[str, Mode]:
    py = (sys.executable, "-m")
    ws_path = "/api/realtime"
    return {
        "bare": Mode("bare", (*py, "scripts.bench.server", "--mode", "bare"), "json", ws_path, "aiohttp"),
        "hub": Mode(
            "hub", (*py, "scripts.bench.server", "--mode", "hub"), "json", ws_path, "aiohttp-realtime"
        ),
        "hub-sse": Mode(
            "hub-sse",
            (*py, "scripts.bench.server", "--mode", "hub-sse"),
            "sse",
            "/api/realtime/sse",
            "aiohttp-realtime over SSE",
        ),
        "websockets": Mode(
            "websockets", (*py, "scripts.bench.peer_websockets"), "json", ws_path, "websockets broadcast()"
        ),
        "socketio": Mode(
            "socketio",
            (*py, "scripts.bench.peer_socketio"),
            "socketio",
            "/socket.io/?EIO=4&transport=websocket",
            "python-socketio room emit",
        ),
        "node-ws": Mode(
            "node-ws",
            ("node", "--expose-gc", str(NODE_DIR / "server.mjs")),
            "json",
            ws_path,
            "Node ws, send() loop",
        ),
    }


def unavailable(mode: str) -> str | None:
    """Why `mode` cannot run here, or None."""
    if mode == "node-ws":
        if shutil.which("node") is None:
            return "node-ws skipped: no `node` on PATH"
        if not (NODE_DIR / "node_modules" / "ws" / "package.json").exists():
            return "node-ws skipped: ws not installed (npm ci --prefix scripts/bench/node)"
    if mode == "hub-sse" and not (ROOT / "backend" / "realtime" / "sse.py").exists():
        return "hub-sse skipped: this library has no SSE transport (backend/realtime/sse.py)"
    module = {"websockets": "websockets", "socketio": "socketio"}.get(mode)
    if module is not None:
        try:
            __import__(module)
        except ImportError:
            return f"{mode} skipped: the {module} package is not installed"
    return None


def expected_wire(kind: str, text: str) -> str:
    return f'42["e",{text}]' if kind == "socketio" else text


# ---------------------------------------------------------------- /proc readings


def server_cpu_ns(pid: int) -> int:
    """CPU time of every thread of `pid` in ns, from /proc/<pid>/task/*/schedstat
    (run time, ns resolution); /proc/<pid>/stat (10 ms ticks) if that is missing."""
    total = 0
    with contextlib.suppress(OSError, ValueError, IndexError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):  # a thread that just exited
                total += int((task / "schedstat").read_text().split()[0])
    if total:
        return total
    utime, stime = server_user_sys_ticks(pid)
    return (utime + stime) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def server_user_sys_ticks(pid: int) -> tuple[int, int]:
    """utime and stime of `pid` (all threads), in clock ticks: /proc/<pid>/stat fields 14, 15."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]), int(fields[12])


def server_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


async def settle(pid: int) -> None:
    """Wait until the server stops using CPU (handshakes, snapshots, cleanup done)."""
    before = server_cpu_ns(pid)
    for _ in range(200):
        await asyncio.sleep(0.05)
        now = server_cpu_ns(pid)
        if now - before < 1_000_000:  # < 2% of a core over 50 ms
            return
        before = now


# ---------------------------------------------------------------- CPU placement


@contextlib.contextmanager
def pinned(cpu: int | None) -> Iterator[None]:
    """Run the block (a process spawn: children inherit it) on `cpu`, then restore."""
    if cpu is None or not hasattr(os, "sched_setaffinity"):
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


def cpu_plan(no_pin: bool) -> tuple[int | None, int | None]:
    """(server CPU, load-generator CPU): the server gets a core of its own."""
    if no_pin or not hasattr(os, "sched_getaffinity"):
        return None, None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None, None
    return cpus[0], cpus[1]


# ---------------------------------------------------------------- processes


class Server:
    """One bench server subprocess and its stdin/stdout control channel."""

    def __init__(self, mode: Mode, cpu: int | None, profile: Path | None) -> None:
        self.mode = mode
        self.cpu = cpu
        self.profile = profile
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def __aenter__(self) -> Server:
        env = dict(os.environ)
        env.pop("BENCH_PROFILE", None)
        if self.profile is not None:
            env["BENCH_PROFILE"] = str(self.profile)
        with pinned(self.cpu):
            self.proc = await asyncio.create_subprocess_exec(
                *self.mode.argv,
                cwd=ROOT,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        try:
            line = await self._readline(30)
        except BenchError:
            line = ""
        if not line.startswith("PORT "):
            await self.stop()
            raise BenchError(f"{self.mode.name} server did not start (said {line!r})")
        self.port = int(line.split()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def _readline(self, timeout: float) -> str:
        assert self.proc is not None and self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            raise BenchError(f"{self.mode.name} server did not answer within {timeout:.0f}s") from None
        return line.decode().strip()

    async def command(self, line: str, timeout: float) -> list[str]:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(line.encode() + b"\n")
        await self.proc.stdin.drain()
        reply = await self._readline(timeout)
        if not reply or reply.startswith("error"):
            raise BenchError(f"{self.mode.name} server: {line!r} -> {reply or 'no answer (exited?)'}")
        return reply.split()

    async def stop(self) -> None:
        """Kill it: nothing is measured after a run, and an orderly shutdown of 10,000
        connections takes seconds. Under cProfile, end of input lets it exit cleanly
        and write its profile."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        if self.profile is not None:
            assert proc.stdin is not None
            proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 30)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


class LoadWorker:
    def __init__(self, index: int, cpu: int | None) -> None:
        self.index = index
        self.cpu = cpu
        self.source = f"127.0.0.{2 + index}"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        argv = [sys.executable, "-m", "scripts.bench.loadgen"]
        if self.cpu is not None:
            argv.append(str(self.cpu))
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 28,  # a latency run's answer is a few MB on one line
        )

    async def call(self, cmd: dict[str, object], timeout: float) -> dict[str, object]:
        proc = self.proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(json.dumps(cmd).encode() + b"\n")
        await proc.stdin.drain()
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout + 30)
        except TimeoutError:
            raise BenchError(f"load generator {self.index} did not answer {cmd['cmd']!r}") from None
        if not line:
            raise BenchError(f"load generator {self.index} exited")
        reply: dict[str, object] = json.loads(line)
        return reply

    async def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


class LoadPool:
    """Load-generator processes, kept for the whole bench (they are not measured)."""

    def __init__(self, size: int, cpu: int | None) -> None:
        self.workers = [LoadWorker(i, cpu) for i in range(size)]
        self.active: list[LoadWorker] = []

    async def __aenter__(self) -> LoadPool:
        await asyncio.gather(*(w.start() for w in self.workers))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.gather(*(w.stop() for w in self.workers), return_exceptions=True)

    async def connect(
        self, port: int, mode: Mode, n: int, expected: int, procs: int, latency: bool = False
    ) -> None:
        procs = max(1, min(procs, len(self.workers), n))
        self.active = self.workers[:procs]
        shares = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
        timeout = max(60.0, n / 100)
        replies = await asyncio.gather(
            *(
                w.call(
                    {
                        "cmd": "connect",
                        "port": port,
                        "path": mode.path,
                        "kind": mode.kind,
                        "count": share,
                        "source": w.source,
                        "concurrency": CONNECT_CONCURRENCY,
                        "expected": expected,
                        "latency": latency,
                    },
                    timeout,
                )
                for w, share in zip(self.active, shares, strict=True)
            )
        )
        for reply in replies:
            if "error" in reply:
                raise BenchError(f"{mode.name}: connecting {n} subscribers: {reply['error']}")

    async def wait(self, mode: Mode, timeout: float) -> list[dict[str, object]]:
        replies = await asyncio.gather(
            *(w.call({"cmd": "wait", "timeout": timeout}, timeout) for w in self.active)
        )
        for reply in replies:
            if "error" in reply:
                raise BenchError(f"{mode.name}: delivery check failed: {reply['error']}")
        return replies

    async def close(self) -> None:
        await asyncio.gather(*(w.call({"cmd": "close"}, 30) for w in self.active))

    def cpu_ns(self) -> int:
        return sum(server_cpu_ns(w.proc.pid) for w in self.workers if w.proc is not None)


# ---------------------------------------------------------------- one run


@dataclass(frozen=True)
class Schedule:
    """``run <burst> <groups> <period_us> <gap_us>`` (scripts.bench.common)."""

    burst: int
    groups: int
    period_us: int
    gap_us: int

    @property
    def events(self) -> int:
        return self.burst * self.groups

    def command(self) -> str:
        return f"run {self.burst} {self.groups} {self.period_us} {self.gap_us}"


def schedule_for(workload: str, n: int, args: argparse.Namespace) -> Schedule:
    if workload == "steady":
        events = args.events or min(2_000, max(10, args.steady_frames // n))
        return Schedule(1, events, max(1_000, n * args.steady_us), 0)
    if workload == "burst":
        groups = (
            max(1, args.events // args.burst)
            if args.events
            else min(20, max(1, args.burst_frames // (args.burst * n)))
        )
        return Schedule(args.burst, groups, 0, max(20_000, n * 100))
    if workload == "latency":
        return Schedule(
            1, max(1, round(args.latency_rate * args.latency_seconds)), round(1e6 / args.latency_rate), 0
        )
    raise ValueError(workload)


@dataclass
class Run:
    mode: str
    workload: str
    subscribers: int
    repeat: int
    events: int
    connect_ns: int
    fanout_ns: int
    rss_kb_before: int
    rss_kb_after: int
    received: int
    user_ticks: int
    sys_ticks: int
    #: The load generators' CPU time and the wall time of the fan-out, to show that the
    #: clients kept up (they are not the measurement).
    clients_ns: int = 0
    wall_ns: int = 0
    latencies_us: list[int] = field(default_factory=list, repr=False)

    @property
    def clients_busy(self) -> float:
        """The load generators' CPU use over the run, in cores."""
        return self.clients_ns / self.wall_ns if self.wall_ns else math.nan

    @property
    def us_per_frame(self) -> float:
        return self.fanout_ns / 1000 / (self.subscribers * self.events)

    @property
    def us_per_connect(self) -> float:
        return self.connect_ns / 1000 / self.subscribers

    @property
    def kb_per_conn(self) -> float:
        return (self.rss_kb_after - self.rss_kb_before) / self.subscribers

    @property
    def sys_share(self) -> float:
        total = self.user_ticks + self.sys_ticks
        return self.sys_ticks / total if total else math.nan


def load_procs_for(n: int, args: argparse.Namespace) -> int:
    if args.load_procs:
        return int(args.load_procs)
    return 1 if n < 500 else max(2, math.ceil(n / 2_500))


async def run_once(
    mode: Mode,
    workload: str,
    n: int,
    repeat: int,
    pool: LoadPool,
    args: argparse.Namespace,
) -> Run:
    schedule = schedule_for(workload, n, args)
    latency = workload == "latency"
    profile = None
    if args.profile is not None and not mode.argv[0].endswith("node"):
        profile = args.profile / f"{mode.name}-{workload}-{n}-r{repeat}.prof"
    procs = load_procs_for(n, args)
    async with Server(mode, args.server_cpu, profile) as server:
        pid = server.pid
        # A throw-away subscriber first, so one-time costs (lazy imports, first
        # handshake, caches) are not counted against the measured connections.
        await pool.connect(server.port, mode, 1, 0, 1)
        await pool.close()
        # Then a full collection, in every mode: the start-up (imports, schemas, the
        # app) leaves one due, and the first thousand connects' allocations would
        # trigger it inside the measurement - a one-time 15-30 ms in the hub's larger
        # heap, which alone made its connect cost 2-3.5x bare's at 100 subscribers.
        # Collections that the connects themselves cause are still counted.
        await server.command("gc", 60)
        await settle(pid)
        rss_before, cpu_before = server_rss_kb(pid), server_cpu_ns(pid)
        try:
            await pool.connect(server.port, mode, n, schedule.events, procs, latency)
            connect_ns = server_cpu_ns(pid) - cpu_before
            await settle(pid)
            # A full collection now, in every mode: the connects left one due, and
            # whichever mode allocates first would otherwise pay it in its measurement.
            await server.command("gc", 60)
            rss_after = server_rss_kb(pid)
            count = int((await server.command("count", 30))[1])
            # The SSE server notices the warm-up subscriber's reset only at its next
            # heartbeat (sse.py polls the peer then): it may still count it.
            if count != n and not (mode.kind == "sse" and count == n + 1):
                raise BenchError(f"{mode.name} server counts {count} subscribers, expected {n}")
            ticks_before, cpu_start = server_user_sys_ticks(pid), server_cpu_ns(pid)
            clients_start, wall_start = pool.cpu_ns(), time.monotonic_ns()
            timeout = max(60.0, n * schedule.events / 5_000)
            done = asyncio.ensure_future(server.command(schedule.command(), timeout))
            try:
                replies = await pool.wait(mode, timeout)
            finally:
                reply = await done
            cpu_end, ticks_after = server_cpu_ns(pid), server_user_sys_ticks(pid)
            clients_ns, wall_ns = pool.cpu_ns() - clients_start, time.monotonic_ns() - wall_start
            if reply[1:] != [str(schedule.events), str(count)]:
                raise BenchError(f"{mode.name}: published {reply[1:]}, expected {schedule.events} to {n}")
        finally:
            await pool.close()
    received = sum(int(str(r["received"])) for r in replies)
    if received != n * schedule.events:
        raise BenchError(f"{mode.name}: {received} frames received, expected {n * schedule.events}")
    check_frame(mode, str(replies[0]["sample"]))
    latencies: list[int] = []
    for r in replies:
        if r.get("latencies"):
            raw = base64.b64decode(str(r["latencies"]))
            latencies.extend(memoryview(raw).cast("i").tolist())
    return Run(
        mode.name,
        workload,
        n,
        repeat,
        schedule.events,
        connect_ns,
        cpu_end - cpu_start,
        rss_before,
        rss_after,
        received,
        ticks_after[0] - ticks_before[0],
        ticks_after[1] - ticks_before[1],
        clients_ns,
        wall_ns,
        latencies,
    )


def check_frame(mode: Mode, sample: str) -> None:
    """The first event frame a client saw is byte for byte the common frame (with the
    stamp it carried): every mode sends the same bytes (socket.io: inside its framing)."""
    found = re.search(r'"t":(\d+),', sample)
    stamp = int(found.group(1)) if found else -1
    want = expected_wire(mode.kind, event_text(1, stamp))
    if sample != want:
        raise BenchError(
            f"{mode.name}: event frame differs from the common one:\n  got  {sample!r}\n  want {want!r}"
        )
    assert EVENT_PREFIX in want


# ---------------------------------------------------------------- summaries


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


@dataclass
class CpuRow:
    """Fan-out CPU of one mode, workload and subscriber count."""

    workload: str
    subscribers: int
    mode: str
    events: int
    us_per_frame: float
    ratio: float  # median(mode) / median(bare)
    paired: float  # median over repeats of mode/bare
    sys_share: float
    runs: list[Run]


@dataclass
class ConnRow:
    """Connect cost and idle RSS of one mode and subscriber count."""

    subscribers: int
    mode: str
    us_per_connect: float
    connect_ratio: float
    connect_paired: float
    kb_per_conn: float
    rss_ratio: float
    rss_paired: float


@dataclass
class LatencyRow:
    mode: str
    subscribers: int
    rate: float
    seconds: float
    frames: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class Results:
    cpu: list[CpuRow]
    conn: list[ConnRow]
    latency: list[LatencyRow]
    notes: list[str]
    args: argparse.Namespace
    seconds: float = 0.0
    #: The library's commit (and whether the tree had uncommitted changes) at the start.
    library: str = ""


def _paired(runs: list[Run], base: list[Run], value: str) -> float:
    by_key = {(r.workload, r.repeat): getattr(r, value) for r in base}
    ratios = [
        getattr(r, value) / by_key[(r.workload, r.repeat)]
        for r in runs
        if by_key.get((r.workload, r.repeat), 0) > 0
    ]
    return median(ratios)


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else math.nan


def summarize_cpu(runs: list[Run]) -> list[CpuRow]:
    groups: dict[tuple[str, int, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.workload, r.subscribers, r.mode), []).append(r)
    rows = []
    for (workload, n, mode), group in groups.items():
        base = groups.get((workload, n, BASELINE), [])
        us = median([r.us_per_frame for r in group])
        shares = [r.sys_share for r in group if not math.isnan(r.sys_share)]
        rows.append(
            CpuRow(
                workload,
                n,
                mode,
                group[0].events,
                us,
                _ratio(us, median([r.us_per_frame for r in base])),
                _paired(group, base, "us_per_frame"),
                median(shares),
                group,
            )
        )
    return rows


def summarize_conn(runs: list[Run]) -> list[ConnRow]:
    groups: dict[tuple[int, str], list[Run]] = {}
    for r in runs:
        groups.setdefault((r.subscribers, r.mode), []).append(r)
    rows = []
    for (n, mode), group in groups.items():
        base = groups.get((n, BASELINE), [])
        us, kb = median([r.us_per_connect for r in group]), median([r.kb_per_conn for r in group])
        rows.append(
            ConnRow(
                n,
                mode,
                us,
                _ratio(us, median([r.us_per_connect for r in base])),
                _paired(group, base, "us_per_connect"),
                kb,
                _ratio(kb, median([r.kb_per_conn for r in base])),
                _paired(group, base, "kb_per_conn"),
            )
        )
    return rows


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return math.nan
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return float(sorted_values[index])


def summarize_latency(runs: list[Run], args: argparse.Namespace) -> list[LatencyRow]:
    groups: dict[tuple[str, int], list[int]] = {}
    for r in runs:
        groups.setdefault((r.mode, r.subscribers), []).extend(r.latencies_us)
    rows = []
    for (mode, n), values in groups.items():
        values.sort()
        rows.append(
            LatencyRow(
                mode,
                n,
                args.latency_rate,
                args.latency_seconds,
                len(values),
                percentile(values, 0.50) / 1000,
                percentile(values, 0.99) / 1000,
                values[-1] / 1000 if values else math.nan,
            )
        )
    return rows


# ---------------------------------------------------------------- tables


def _f(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}"


def format_cpu(rows: list[CpuRow], repeat: int) -> str:
    runs: dict[str, int] = {}
    for r in rows:
        runs[r.mode] = max(runs.get(r.mode, 0), len(r.runs))
    fewer = ", ".join(f"{m}: {k}" for m, k in runs.items() if k < repeat)
    lines = [
        f"fan-out: server CPU per delivered frame (median of {repeat}{'; ' + fewer if fewer else ''}); "
        f"ratio = mode / {BASELINE} "
        "(of the medians; median of the per-repeat pairs)",
        f"{'workload':<8} {'subscribers':>11} {'mode':<10} {'events':>6} {'us/frame':>9} "
        f"{'ratio':>6} {'paired':>6} {'sys%':>5}",
    ]
    for r in rows:
        sys_pct = "-" if math.isnan(r.sys_share) else f"{100 * r.sys_share:.0f}"
        lines.append(
            f"{r.workload:<8} {r.subscribers:>11} {r.mode:<10} {r.events:>6} {r.us_per_frame:>9.2f} "
            f"{_f(r.ratio):>6} {_f(r.paired):>6} {sys_pct:>5}"
        )
    return "\n".join(lines)


def format_conn(rows: list[ConnRow]) -> str:
    lines = [
        f"connect + subscribe + snapshot: server CPU per connection; idle subscribed connections: "
        f"RSS per connection; ratios to {BASELINE} (of the medians; paired)",
        f"{'subscribers':>11} {'mode':<10} {'us/conn':>8} {'ratio':>6} {'paired':>6} "
        f"{'KB/conn':>8} {'ratio':>6} {'paired':>6}",
    ]
    for r in rows:
        lines.append(
            f"{r.subscribers:>11} {r.mode:<10} {r.us_per_connect:>8.1f} {_f(r.connect_ratio):>6} "
            f"{_f(r.connect_paired):>6} {r.kb_per_conn:>8.1f} {_f(r.rss_ratio):>6} {_f(r.rss_paired):>6}"
        )
    return "\n".join(lines)


def format_latency(rows: list[LatencyRow]) -> str:
    lines = [
        "publish -> receive latency (publisher's monotonic stamp to the client's arrival time)",
        f"{'mode':<10} {'subscribers':>11} {'events/s':>8} {'frames':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}",
    ]
    for r in rows:
        lines.append(
            f"{r.mode:<10} {r.subscribers:>11} {r.rate:>8g} {r.frames:>8} {r.p50_ms:>7.2f} "
            f"{r.p99_ms:>7.2f} {r.max_ms:>7.2f}"
        )
    return "\n".join(lines)


def format_results(results: Results) -> str:
    parts = [format_cpu(results.cpu, results.args.repeat), format_conn(results.conn)]
    if results.latency:
        parts.append(format_latency(results.latency))
    parts.extend(results.notes)
    return "\n\n".join(parts)


# ---------------------------------------------------------------- the whole bench


def _csv(value: str, allowed: Sequence[str] | None = None, kind: type = str) -> list:  # type: ignore[type-arg]
    items = [kind(v.strip()) for v in value.split(",") if v.strip()]
    if allowed is not None:
        bad = [v for v in items if v not in allowed]
        if bad:
            raise argparse.ArgumentTypeError(f"unknown {bad}; choose from {', '.join(allowed)}")
    return items


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench-fanout",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--quick", action="store_true", help="a smoke run: 20 subscribers, few events, once, scale 200")
    add(
        "--modes",
        type=lambda v: _csv(v, MODES),
        help=f"modes to run (default: all available of {','.join(MODES)})",
    )
    add("--workloads", type=lambda v: _csv(v, WORKLOADS), help="steady,burst (default both)")
    add("--subscribers", type=lambda v: _csv(v, kind=int), help="subscriber counts (default 100,1000,2000)")
    add("--repeat", type=int, help="runs per cell, alternating modes; medians taken (default 3; --quick 1)")
    add(
        "--socketio-repeat",
        type=int,
        default=1,
        help="runs per cell of socketio, the slowest mode (default 1: at 5-9x the baseline its ratio "
        "needs no median, and three would add ~2 minutes)",
    )
    add("--events", type=int, help="events per fan-out run (default: ~frames/subscribers, within bounds)")
    add(
        "--steady-frames",
        type=int,
        default=STEADY_FRAMES,
        help=f"frames per steady run (default {STEADY_FRAMES:,})",
    )
    add(
        "--burst-frames",
        type=int,
        default=BURST_FRAMES,
        help=f"frames per burst run (default {BURST_FRAMES:,})",
    )
    add(
        "--steady-us",
        type=int,
        default=STEADY_US_PER_SUBSCRIBER,
        metavar="US",
        help=f"steady: one event every US microseconds per subscriber (default {STEADY_US_PER_SUBSCRIBER})",
    )
    add("--burst", type=int, default=BURST, help=f"events per burst (default {BURST})")
    add("--scale", type=int, help="the large-N run's subscribers (default 10000; 0: skip)")
    add("--scale-modes", type=lambda v: _csv(v, MODES), help="modes at --scale (default bare,hub)")
    add("--scale-repeat", type=int, help="repeats at --scale (default 1)")
    add(
        "--latency-modes",
        type=lambda v: _csv(v, MODES),
        help="modes of the latency run (default: --modes but socketio; '' skips)",
    )
    add("--latency-subscribers", type=int, help="default 1000 (--quick 20)")
    add("--latency-rate", type=float, default=20.0, help="events per second (default 20)")
    add("--latency-seconds", type=float, help="default 10 (--quick 1)")
    add(
        "--load-procs",
        type=int,
        help="load-generator processes (default: 1 below 500 subscribers, else N/2500, >= 2)",
    )
    add(
        "--no-pin", action="store_true", help="do not pin the server and the load generators to separate CPUs"
    )
    add(
        "--profile",
        type=Path,
        metavar="DIR",
        help="profile the Python servers' fan-out (cProfile) into DIR; print hot spots",
    )
    add(
        "--write-docs",
        action="store_true",
        help="rewrite the results in docs/benchmarks.md and docs/benchmarks.png",
    )
    add("-v", "--verbose", action="store_true", help="print every run")
    args = parser.parse_args(argv)
    q = args.quick
    if args.modes is None:
        args.modes = list(MODES)
    if args.workloads is None:
        args.workloads = list(WORKLOADS)
    if args.subscribers is None:
        args.subscribers = [20] if q else [100, 1000, 2000]
    if args.repeat is None:
        args.repeat = 1 if q else 3
    if args.scale is None:
        args.scale = 200 if q else 10_000
    if args.scale_modes is None:
        args.scale_modes = ["bare", "hub"]
    if args.scale_repeat is None:
        args.scale_repeat = 1
    if args.latency_modes is None:
        # socketio cannot sustain 1,000 subscribers x 20 events/s on one core: its
        # "latency" would be its growing backlog (and its run would take twice as long).
        args.latency_modes = [m for m in args.modes if m != "socketio" or q]
    if args.latency_subscribers is None:
        args.latency_subscribers = 20 if q else 1_000
    if args.latency_seconds is None:
        args.latency_seconds = 1.0 if q else 10.0
    if q:
        args.steady_frames = min(args.steady_frames, 400)
        args.burst_frames = min(args.burst_frames, 2_000)
    numbers = [args.repeat, args.scale_repeat, args.socketio_repeat, args.burst, args.latency_subscribers]
    numbers += args.subscribers
    if min(numbers) < 1 or (args.events is not None and args.events < 1) or args.scale < 0:
        parser.error("counts must be positive")
    if args.latency_rate <= 0 or args.latency_seconds <= 0:
        parser.error("--latency-rate and --latency-seconds must be positive")
    if BASELINE not in args.modes:
        parser.error(f"--modes must include the baseline, {BASELINE}")
    args.server_cpu, args.load_cpu = cpu_plan(args.no_pin)
    return args


def _log(args: argparse.Namespace, message: str) -> None:
    if args.verbose:
        print(message, file=sys.stderr, flush=True)


async def bench(args: argparse.Namespace) -> Results:
    raise_nofile_limit()
    table = mode_table()
    notes: list[str] = []
    skipped = {m: why for m in MODES if (why := unavailable(m)) is not None}
    for mode, why in skipped.items():
        if mode in args.modes or mode in args.latency_modes or mode in args.scale_modes:
            notes.append(f"note: {why}")
            print(f"note: {why}", file=sys.stderr, flush=True)
    if BASELINE in skipped:
        raise BenchError(skipped[BASELINE])
    modes = [m for m in args.modes if m not in skipped]
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    sizes = list(args.subscribers)
    biggest = max([*sizes, args.scale, args.latency_subscribers])
    runs: list[Run] = []
    latency_runs: list[Run] = []
    pool_size = max(load_procs_for(n, args) for n in [biggest])
    async with LoadPool(pool_size, args.load_cpu) as pool:

        async def one(mode: str, workload: str, n: int, rep: int) -> Run:
            run = await run_once(table[mode], workload, n, rep, pool, args)
            _log(
                args,
                f"  r{rep} {workload:<7} n={n:<5} {mode:<10} {run.us_per_frame:7.2f} us/frame  "
                f"{run.us_per_connect:7.1f} us/conn  {run.kb_per_conn:5.1f} KB/conn  "
                f"(clients {run.clients_busy:.2f} cores, {run.wall_ns / 1e9:.1f}s)",
            )
            return run

        for rep in range(1, args.repeat + 1):
            for n in sizes:
                for workload in args.workloads:
                    for mode in modes:  # alternated, so drifting machine load hits every mode alike
                        if mode != "socketio" or rep <= args.socketio_repeat:
                            runs.append(await one(mode, workload, n, rep))
        scale_modes = [m for m in args.scale_modes if m not in skipped]
        if args.scale and scale_modes and args.scale not in sizes:
            if BASELINE not in scale_modes:
                scale_modes.insert(0, BASELINE)
            for rep in range(1, args.scale_repeat + 1):
                for workload in args.workloads:
                    for mode in scale_modes:
                        runs.append(await one(mode, workload, args.scale, rep))
        latency_modes = [m for m in args.latency_modes if m not in skipped]
        if latency_modes:
            # A throw-away latency run first, as long as the measured ones: whichever
            # mode went first measured twice the others' p50 and p99, its load
            # generators using twice the CPU for the same frames (a transient on the
            # clients' side after the fan-out runs; a 2 s warm-up was not enough). Bare,
            # always first, looked twice as slow as it is.
            await run_once(table[latency_modes[0]], "latency", args.latency_subscribers, 0, pool, args)
        for mode in latency_modes:
            run = await run_once(table[mode], "latency", args.latency_subscribers, 1, pool, args)
            _log(
                args,
                f"  latency n={args.latency_subscribers} {mode:<10} {len(run.latencies_us)} samples "
                f"(server {run.fanout_ns / run.wall_ns:.2f} cores, clients {run.clients_busy:.2f} cores)",
            )
            latency_runs.append(run)
    cpu = sorted(
        summarize_cpu(runs), key=lambda r: (r.subscribers, WORKLOADS.index(r.workload), MODES.index(r.mode))
    )
    conn = sorted(summarize_conn(runs), key=lambda r: (r.subscribers, MODES.index(r.mode)))
    latency = sorted(summarize_latency(latency_runs, args), key=lambda r: MODES.index(r.mode))
    return Results(cpu, conn, latency, notes, args)


def print_profiles(directory: Path, rows: list[CpuRow]) -> None:
    for r in rows:
        last = max(run.repeat for run in r.runs)
        path = directory / f"{r.mode}-{r.workload}-{r.subscribers}-r{last}.prof"
        if path.exists():
            print(
                f"\n== hot spots of the fan-out (the run command only): {r.mode}, {r.workload}, "
                f"{r.subscribers} subscribers ({path}), by own time. cProfile inflates Python-heavy "
                "paths; 'poll' is the loop waiting (wall time, not CPU)."
            )
            pstats.Stats(str(path), stream=sys.stdout).sort_stats("tottime").print_stats(15)


def machine() -> dict[str, str]:
    """What the figures were measured on, for the docs."""
    info: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    info["cores"] = str(os.cpu_count())
    info["kernel"] = platform.release()
    info["python"] = platform.python_version()
    from importlib.metadata import PackageNotFoundError, version

    for dist in (
        "aiohttp",
        "aiohttp-realtime",
        "pydantic",
        "websockets",
        "python-socketio",
        "python-engineio",
    ):
        try:
            info[dist] = version(dist)
        except PackageNotFoundError:
            info[dist] = "-"
    info["node"] = "-"
    node = shutil.which("node")
    if node:
        with contextlib.suppress(Exception):
            import subprocess

            info["node"] = subprocess.run(
                [node, "--version"], capture_output=True, text=True, check=True
            ).stdout.strip()
    ws_pkg = NODE_DIR / "node_modules" / "ws" / "package.json"
    info["ws"] = json.loads(ws_pkg.read_text())["version"] if ws_pkg.exists() else "-"
    return info


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
        f"\n({results.seconds:.0f}s; server CPU from /proc/<pid>/task/*/schedstat; every run delivered "
        "every event in order to every subscriber)",
        flush=True,
    )
    if args.profile is not None:
        print_profiles(args.profile, results.cpu)
    if args.write_docs:
        report.write_docs(results, machine())
    return results


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except BenchError as exc:
        print(f"bench-fanout: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
