"""Fan-out benchmark: the realtime hub against a naive aiohttp send loop, as ratios.

    scripts/bench-fanout [--subscribers 100,500] [--events N] [--repeat 3] [--quick]

For each subscriber count and mode (``bare``, ``hub``; see `scripts.bench.server`)
a fresh server subprocess is started, N subscribers connect from this process and
subscribe, and one ``POST /publish?count=K`` makes the server publish K events of
~250 bytes. Measured, on the server process only:

- CPU per delivered frame: the server's CPU time (user + system, all threads, read
  from /proc) from just before the trigger until every subscriber has received all
  K events, divided by N*K. The client side is not timed: a Python load generator
  saturates a core long before the server does, so wall time would measure it.
- RSS per connection: the server's VmRSS after N idle subscribers connected and
  subscribed, minus before, divided by N.

Every subscriber checks that it got exactly the events 1..K in order (no gap, no
duplicate, no close); anything else aborts the run with an error. The table shows
the median of the repeats and the hub/bare ratio per subscriber count. Absolute
figures depend on the machine; the ratio is the result.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import pstats
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from scripts.bench.server import YIELD_EVERY

ROOT = Path(__file__).resolve().parents[2]
MODES = ("bare", "hub")
TOPIC = "bench"
#: Default events per run: about this many delivered frames per run, within bounds.
FRAMES_PER_RUN = 150_000
MIN_EVENTS, MAX_EVENTS = 50, 2_000  # 2,000 x ~250 B stays well under the hub's 1 MiB queue
CONNECT_CONCURRENCY = 50


class BenchError(Exception):
    """The run did not deliver what it should have; no figure is printed for it."""


# ---------------------------------------------------------------- /proc readings


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def server_cpu_ns(pid: int) -> int:
    """CPU time (user + system) of every thread of `pid`, in ns.

    /proc/<pid>/task/*/schedstat gives each thread's run time in ns (the quantity
    utime + stime are derived from); /proc/<pid>/stat has 10 ms resolution only,
    used when schedstat is unavailable.
    """
    try:
        total = 0
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(FileNotFoundError):  # a thread that just exited
                total += int((task / "schedstat").read_text().split()[0])
        if total:
            return total
    except (OSError, ValueError, IndexError):
        pass
    utime, stime = server_user_sys_ticks(pid)
    return (utime + stime) * 1_000_000_000 // _clock_ticks()


def server_user_sys_ticks(pid: int) -> tuple[int, int]:
    """utime and stime of `pid` from /proc/<pid>/stat, in clock ticks (fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return int(fields[11]), int(fields[12])


def server_rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchError(f"no VmRSS for pid {pid}")


# ---------------------------------------------------------------- subscribers


class EventCounter:
    """Checks one subscriber's frames: hello (hub only), a snapshot, then events
    with seq 1, 2, 3, ... exactly; raises BenchError on anything else."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.snapshot = False
        self.last_seq = 0

    @property
    def complete(self) -> bool:
        return self.last_seq >= self.expected

    def feed(self, data: str) -> None:
        frame = json.loads(data)
        kind = frame.get("type")
        if kind == "event":
            if not self.snapshot:
                raise BenchError("event before the snapshot")
            seq = frame.get("seq")
            if frame.get("topic") != TOPIC or seq != self.last_seq + 1:
                raise BenchError(f"expected event seq {self.last_seq + 1} on {TOPIC!r}, got {data[:120]}")
            if seq > self.expected:
                raise BenchError(f"more events than the {self.expected} published")
            self.last_seq = seq
        elif kind == "snapshot":
            if self.snapshot:
                raise BenchError("a second snapshot")
            self.snapshot = True
        elif kind != "hello":
            raise BenchError(f"unexpected frame {data[:120]}")


class Subscriber:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse, expected: int) -> None:
        self.ws = ws
        self.counter = EventCounter(expected)
        self.subscribed = asyncio.Event()
        self.done = asyncio.Event()
        self.error: BaseException | None = None
        self.task = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, session: aiohttp.ClientSession, url: str, expected: int) -> Subscriber:
        ws = await session.ws_connect(url, autoping=True, max_msg_size=0)
        sub = cls(ws, expected)
        await ws.send_str(json.dumps({"type": "subscribe", "topics": [TOPIC]}))
        waiter = asyncio.ensure_future(sub.subscribed.wait())
        try:
            await asyncio.wait({waiter, sub.task}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        sub.raise_error()
        return sub

    def raise_error(self) -> None:
        if self.error is not None:
            raise BenchError(f"subscriber failed: {self.error}") from self.error
        if self.task.done() and not self.subscribed.is_set():
            raise BenchError(f"connection closed before the snapshot (code {self.ws.close_code})")

    async def _read(self) -> None:
        counter = self.counter
        try:
            async for msg in self.ws:
                if msg.type is not aiohttp.WSMsgType.TEXT:
                    raise BenchError(f"unexpected {msg.type.name} message")
                counter.feed(msg.data)
                if counter.snapshot:
                    self.subscribed.set()
                if counter.complete:
                    self.done.set()
            if not counter.complete:
                raise BenchError(
                    f"closed (code {self.ws.close_code}) after {counter.last_seq} "
                    f"of {counter.expected} events"
                )
        except BaseException as exc:
            self.error = exc
            raise
        finally:
            self.done.set()

    async def close(self) -> None:
        await self.ws.close()
        with contextlib.suppress(Exception):  # its error, if any, was checked by the run
            await self.task


# ---------------------------------------------------------------- one run


@dataclass
class Sample:
    mode: str
    subscribers: int
    events: int
    cpu_ns: int
    rss_kb_before: int
    rss_kb_after: int
    received: int
    user_ticks: int = 0
    sys_ticks: int = 0

    @property
    def us_per_frame(self) -> float:
        return self.cpu_ns / 1000 / (self.subscribers * self.events)

    @property
    def sys_share(self) -> float:
        """Share of the CPU time spent in the kernel (10 ms resolution; NaN if none measured)."""
        total = self.user_ticks + self.sys_ticks
        return self.sys_ticks / total if total else math.nan

    @property
    def kb_per_conn(self) -> float:
        return (self.rss_kb_after - self.rss_kb_before) / self.subscribers


class Server:
    def __init__(self, mode: str, profile: Path | None) -> None:
        self.mode = mode
        self.profile = profile
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def __aenter__(self) -> Server:
        env = dict(os.environ)
        env.pop("BENCH_PROFILE", None)
        if self.profile is not None:
            env["BENCH_PROFILE"] = str(self.profile)
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "scripts.bench.server",
            "--mode",
            self.mode,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        try:
            line = await asyncio.wait_for(self.proc.stdout.readline(), 30)
        except TimeoutError:
            line = b""
        if not line.startswith(b"PORT "):
            await self._stop()
            raise BenchError(f"{self.mode} server did not start (said {line!r})")
        self.port = int(line.split()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stop()

    async def _stop(self) -> None:
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


async def _settle(pid: int) -> None:
    """Wait until the server stops using CPU (handshakes, snapshots are done)."""
    before = server_cpu_ns(pid)
    for _ in range(50):
        await asyncio.sleep(0.1)
        now = server_cpu_ns(pid)
        if now - before < 2_000_000:  # < 2% of a core over 100 ms
            return
        before = now


async def run_once(
    mode: str, subscribers: int, events: int, profile: Path | None = None, yield_every: int = YIELD_EVERY
) -> Sample:
    async with (
        Server(mode, profile) as server,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session,
    ):
        base = f"http://127.0.0.1:{server.port}"
        url = f"{base}/api/realtime"
        # A throw-away subscriber first, so one-time costs (lazy imports, first
        # handshake, caches) are not counted against the measured connections.
        warm = await Subscriber.connect(session, url, events)
        await warm.close()
        await _settle(server.pid)
        rss_before = server_rss_kb(server.pid)

        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)

        async def connect() -> Subscriber:
            async with gate:
                return await Subscriber.connect(session, url, events)

        subs: list[Subscriber] = []
        try:
            results = await asyncio.gather(*(connect() for _ in range(subscribers)), return_exceptions=True)
            subs = [r for r in results if isinstance(r, Subscriber)]
            failed = [r for r in results if not isinstance(r, Subscriber)]
            if failed:
                raise BenchError(
                    f"{len(failed)} of {subscribers} subscribers could not subscribe: {failed[0]}"
                )
            await _settle(server.pid)
            rss_after = server_rss_kb(server.pid)

            ticks_before = server_user_sys_ticks(server.pid)
            cpu_before = server_cpu_ns(server.pid)
            params = {"count": str(events), "yield_every": str(yield_every)}
            async with session.post(f"{base}/publish", params=params) as resp:
                if resp.status != 200:
                    raise BenchError(f"publish failed: HTTP {resp.status} {await resp.text()}")
                reply = await resp.json()
            if reply["subscribers"] != subscribers:
                raise BenchError(f"server saw {reply['subscribers']} subscribers, expected {subscribers}")
            deadline = max(60.0, subscribers * events / 5_000)
            try:
                async with asyncio.timeout(deadline):
                    for sub in subs:
                        await sub.done.wait()
            except TimeoutError:
                got = sum(s.counter.last_seq for s in subs)
                msg = f"timed out after {deadline:.0f}s: {got} of {subscribers * events} frames"
                raise BenchError(msg) from None
            cpu_after = server_cpu_ns(server.pid)
            ticks_after = server_user_sys_ticks(server.pid)
            for sub in subs:
                sub.raise_error()
                if sub.counter.last_seq != events:
                    raise BenchError(f"a subscriber got {sub.counter.last_seq} of {events} events")
            received = sum(s.counter.last_seq for s in subs)
        finally:
            await asyncio.gather(*(s.close() for s in subs), return_exceptions=True)
    user, sys_ = (after - before for after, before in zip(ticks_after, ticks_before, strict=True))
    return Sample(
        mode, subscribers, events, cpu_after - cpu_before, rss_before, rss_after, received, user, sys_
    )


# ---------------------------------------------------------------- the whole bench


@dataclass
class Row:
    mode: str
    subscribers: int
    events: int
    us_per_frame: float
    ratio: float  # hub/bare CPU per frame at this subscriber count (1.0 for bare)
    kb_per_conn: float
    sys_share: float  # share of the server's CPU time spent in the kernel
    samples: list[Sample] = field(default_factory=list)


def default_events(subscribers: int) -> int:
    return min(MAX_EVENTS, max(MIN_EVENTS, FRAMES_PER_RUN // subscribers))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench-fanout",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--subscribers", default=None, help="comma-separated subscriber counts (default 100,500; --quick: 20)"
    )
    parser.add_argument(
        "--events",
        type=int,
        default=None,
        help=f"events per run (default ~{FRAMES_PER_RUN:,} frames / subscribers, "
        f"within {MIN_EVENTS}..{MAX_EVENTS}; --quick: 100)",
    )
    parser.add_argument("--repeat", type=int, default=None, help="runs per cell, median taken (default 3)")
    parser.add_argument(
        "--yield-every",
        type=int,
        default=YIELD_EVERY,
        metavar="M",
        help=f"the publish loop yields to the event loop every M events (default {YIELD_EVERY}; "
        "1 = every event wakes every writer, the hub's worst case)",
    )
    parser.add_argument("--quick", action="store_true", help="a fast smoke run (small sizes, one repeat)")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="run the servers under cProfile; write DIR/<mode>-<n>-r<i>.prof, print hot spots",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print every sample")
    args = parser.parse_args(argv)
    subs = args.subscribers or ("20" if args.quick else "100,500")
    try:
        args.subscribers = [int(s) for s in subs.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--subscribers: not a list of integers: {subs!r}")
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.events is None and args.quick:
        args.events = 100
    if (
        not args.subscribers
        or min(args.subscribers) < 1
        or args.repeat < 1
        or (args.events or 1) < 1
        or args.yield_every < 1
    ):
        parser.error("--subscribers, --events, --repeat and --yield-every must be positive")
    return args


async def bench(args: argparse.Namespace) -> list[Row]:
    samples: dict[tuple[str, int], list[Sample]] = {}
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    for rep in range(args.repeat):
        for n in args.subscribers:
            events = args.events or default_events(n)
            for mode in MODES:  # alternated, so drift in machine load hits both modes alike
                profile = args.profile / f"{mode}-{n}-r{rep + 1}.prof" if args.profile else None
                sample = await run_once(mode, n, events, profile, args.yield_every)
                samples.setdefault((mode, n), []).append(sample)
                if args.verbose:
                    print(
                        f"  run {rep + 1} {mode:4} n={n:<5} events={events:<5} "
                        f"{sample.us_per_frame:7.2f} us/frame  {sample.kb_per_conn:6.1f} KB/conn",
                        file=sys.stderr,
                        flush=True,
                    )
    rows: list[Row] = []
    for n in args.subscribers:
        bare = statistics.median(s.us_per_frame for s in samples[("bare", n)])
        for mode in MODES:
            group = samples[(mode, n)]
            us = statistics.median(s.us_per_frame for s in group)
            kb = statistics.median(s.kb_per_conn for s in group)
            ratio = us / bare if bare > 0 else math.inf
            shares = [s.sys_share for s in group if not math.isnan(s.sys_share)]
            sys_share = statistics.median(shares) if shares else math.nan
            rows.append(Row(mode, n, group[0].events, us, ratio, kb, sys_share, group))
    return rows


def format_table(rows: list[Row], repeat: int) -> str:
    lines = [
        f"fan-out, ~250-byte frames: server CPU per delivered frame (median of {repeat}), "
        "RSS per idle subscribed connection, kernel share of the CPU time",
        f"{'mode':<5} {'subscribers':>11} {'events':>7} {'us/frame':>9} {'hub/bare':>9} "
        f"{'KB RSS/conn':>12} {'sys%':>5}",
    ]
    for r in rows:
        sys_pct = "-" if math.isnan(r.sys_share) else f"{100 * r.sys_share:.0f}"
        lines.append(
            f"{r.mode:<5} {r.subscribers:>11} {r.events:>7} {r.us_per_frame:>9.2f} "
            f"{r.ratio:>9.2f} {r.kb_per_conn:>12.1f} {sys_pct:>5}"
        )
    return "\n".join(lines)


def print_profiles(directory: Path, rows: list[Row], repeat: int) -> None:
    for r in rows:
        path = directory / f"{r.mode}-{r.subscribers}-r{repeat}.prof"
        if path.exists():
            print(f"\n== hot spots: {r.mode}, {r.subscribers} subscribers ({path}), by own time")
            pstats.Stats(str(path), stream=sys.stdout).sort_stats("tottime").print_stats(15)


def run(argv: list[str] | None = None) -> list[Row]:
    args = parse_args(argv)
    started = time.monotonic()
    rows = asyncio.run(bench(args))
    print(format_table(rows, args.repeat))
    print(
        f"({time.monotonic() - started:.0f}s; CPU from /proc/<pid>/task/*/schedstat; "
        f"ratio = hub / bare at the same subscriber count)",
        flush=True,
    )
    if args.profile is not None:
        print_profiles(args.profile, rows, args.repeat)
    return rows


def main(argv: list[str] | None = None) -> int:
    try:
        run(argv)
    except BenchError as exc:
        print(f"bench-fanout: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
