"""What every bench server and the driver share: the frames, the control protocol, the schedule.

The frames. Every mode sends, per event, the same ~250 bytes of JSON (byte for
byte what the hub sends; `event_text`): ``{"type":"event","topic":"bench","seq":S,
"payload":{...,"t":T,...}}`` where ``t`` is `time.monotonic_ns()` taken by the
publisher just before it publishes the event (CLOCK_MONOTONIC is one clock for every
process on Linux, so a receiver's ``monotonic_ns() - t`` is the publish->receive
latency). socket.io wraps the same JSON in its own framing, ``42["e",<json>]``.

The control protocol. A bench server prints ``PORT <n>`` once it serves, then reads
commands on stdin, one per line, and answers each on stdout:

- ``run <burst> <groups> <period_us> <gap_us>``: publish ``burst * groups`` events,
  seq 1, 2, ...: `groups` times, `burst` events back to back (no yield to the event
  loop between them), then sleep until the later of "period after this group
  started" and "gap after it ended" (at least one loop iteration). Answers
  ``done <events> <subscribers>``.
- ``count``: answers ``subscribers <n>``.
- ``gc``: a full garbage collection (Python; Node answers without one), answers
  ``collected <n>``. The driver sends it before each measured run, so that no mode
  pays, inside the measurement, for a full collection the connects made due (see
  docs/benchmarks.md, "Garbage collection").
- end of input: the server exits.

A server may add commands of its own (`control_loop`'s ``extra``: the reconnect-storm
bench's, scripts/bench/storm_server.py).

``steady`` is ``run 1 K P 0`` (one event every P, each written on its own), ``burst``
is ``run 50 G 0 pause`` (50 back to back, then a pause), the latency run
``run 1 K 50000 0`` (20 events/s).
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import gc
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping

TOPIC = "bench"
#: The snapshot every mode sends after a subscribe (the hub's own, byte for byte).
SNAPSHOT_TEXT = f'{{"type":"snapshot","topic":"{TOPIC}","seq":0,"payload":{{"count":0}}}}'
#: What a subscriber sends (the hub's protocol; the other modes look for "subscribe").
SUBSCRIBE_TEXT = f'{{"type":"subscribe","topics":["{TOPIC}"]}}'
#: Padding that brings an event frame to ~250 bytes (with a 15-digit stamp).
NOTE = "x" * 106
#: Listen backlog of every bench server: thousands of clients connect at once.
BACKLOG = 4096
#: Every frame of event `seq` starts with this, then the seq's digits, then a comma.
EVENT_PREFIX = f'{{"type":"event","topic":"{TOPIC}","seq":'


def tick(n: int, t: int) -> dict[str, object]:
    """The event payload (the hub's `Tick` model, in its field order)."""
    return {
        "op": "tick",
        "n": n,
        "symbol": "ACME",
        "price": 1234.5,
        "volume": 1000 + n % 1000,
        "t": t,
        "note": NOTE,
    }


def event_message(seq: int, t: int) -> dict[str, object]:
    """The whole event frame as a dict, in wire order (socket.io serialises this)."""
    return {"type": "event", "topic": TOPIC, "seq": seq, "payload": tick(seq, t)}


def event_text(seq: int, t: int) -> str:
    """The event frame every mode sends: compact JSON, the hub's field order."""
    return json.dumps(event_message(seq, t), separators=(",", ":"))


# ---------------------------------------------------------------- process set-up


def raise_nofile_limit() -> int:
    """Raise the soft open-file limit to the hard one (10,000 connections need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def pin_to_cpu(cpu: int | None) -> None:
    """Keep this process on one CPU (None: leave it where the scheduler puts it)."""
    if cpu is not None and hasattr(os, "sched_setaffinity"):
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {cpu})


# ---------------------------------------------------------------- a Python server's control loop

Publish = Callable[[int, int], Awaitable[None]]
#: A server's own command: its arguments (the words after its name) -> the answer line.
Command = Callable[[list[str]], Awaitable[str]]


async def run_schedule(publish: Publish, burst: int, groups: int, period_us: int, gap_us: int) -> int:
    """Publish seq 1..burst*groups on the schedule described in the module docstring."""
    seq = 0
    monotonic_ns = time.monotonic_ns
    for _ in range(groups):
        started = time.monotonic()
        for _ in range(burst):
            seq += 1
            await publish(seq, monotonic_ns())
        now = time.monotonic()
        await asyncio.sleep(max(0.0, started + period_us / 1e6 - now, gap_us / 1e6))
    return seq


async def control_loop(
    port: int,
    publish: Publish,
    subscribers: Callable[[], int],
    stop: asyncio.Event,
    extra: Mapping[str, Command] | None = None,
) -> None:
    """Print the port, then serve stdin commands until end of input or `stop`
    (``extra``: more commands, by name; each answers one line)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print(f"PORT {port}", flush=True)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        while True:
            reading = asyncio.ensure_future(reader.readline())
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not reading.done():
                reading.cancel()
                return
            line = reading.result().decode().split()
            if not line:
                return  # end of input: the driver is done with us
            if line[0] == "run":
                burst, groups, period_us, gap_us = (int(x) for x in line[1:5])
                if PROFILER is not None:
                    PROFILER.enable()
                try:
                    published = await run_schedule(publish, burst, groups, period_us, gap_us)
                finally:
                    if PROFILER is not None:
                        PROFILER.disable()
                print(f"done {published} {subscribers()}", flush=True)
            elif line[0] == "count":
                print(f"subscribers {subscribers()}", flush=True)
            elif line[0] == "gc":
                print(f"collected {gc.collect()}", flush=True)
            elif extra is not None and line[0] in extra:
                print(await extra[line[0]](line[1:]), flush=True)
            else:
                print(f"error unknown command {line[0]!r}", flush=True)
    finally:
        stopping.cancel()


#: Set by `serve_main` under ``BENCH_PROFILE``: profiles the ``run`` commands only.
PROFILER: cProfile.Profile | None = None


def serve_main(serve: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run a Python bench server: open-file limit, signals, optional cProfile
    (``BENCH_PROFILE=<file>``: the fan-out, i.e. the ``run`` commands and the writes
    they cause within their schedule, is profiled, not the connects; the stats are
    dumped there when the server exits)."""
    global PROFILER
    raise_nofile_limit()
    profile_path = os.environ.get("BENCH_PROFILE")
    PROFILER = profiler = cProfile.Profile() if profile_path else None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(stop)

    try:
        asyncio.run(main())
    finally:
        if profiler is not None and profile_path:
            profiler.dump_stats(profile_path)
