"""The fan-out's Python per frame, without the system call: the hub against aiohttp.

    .venv/bin/python -m scripts.bench.python_path [--subscribers 2000] [--events 200] [--repeat 5]

`scripts/bench-fanout` measures whole servers, where most of a steady frame's cost is
the kernel's `send()` (both servers make one per frame). This splits the rest out: the
same N connections, in one process, write into a transport whose `write` runs the
Python of asyncio's `_SelectorSocketTransport.write` but whose socket `send` returns
at once. What is left is each path's own Python per delivered frame:

- `bare`: `await ws.send_str(frame)` per subscriber (aiohttp's `send_str` ->
  `WebSocketWriter.send_frame` -> `_write_websocket_frame` -> `transport.write`);
- `hub`: `Router.queue`, then the tick: `Router.fan_out` (an append per live
  subscriber, the ordering and budget checks) and the `Flusher` (`Connection.flush`
  -> `TransportWriter.write` -> `transport.write`);
- `floor`: the least a coalescing server can do (the shape of the prototype that set
  the issue's targets): a list append per subscriber, one `transport.write` per
  connection per tick, and nothing else.

It prints all three, and the ratios to `bare`, per repeat and as medians (the modes alternate). It
says how far the hub's Python can move the steady ratio of bench-fanout: with a
send of K µs per frame, the ratio is at best (K + hub) / (K + bare). Cache effects
of a real server (every send evicts some of the Python's working set) are not here.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from typing import Any

from aiohttp import web
from aiohttp._websocket.writer import WebSocketWriter

from aiohttp_realtime.connection import Connection
from aiohttp_realtime.core import Router
from aiohttp_realtime.frames import Frame, snapshot_frame
from aiohttp_realtime.writer import Flusher, TransportWriter

TOPIC = "bench"
PAYLOAD = {"op": "tick", "n": 1, "symbol": "ACME", "price": 1.5, "volume": 3, "t": 0, "note": "x" * 120}


class _Socket:
    def send(self, data: bytes) -> int:
        return len(data)


class Transport:
    """asyncio's `_SelectorSocketTransport.write` (CPython 3.11), line for line in its
    checks, over a socket whose send takes everything at once."""

    def __init__(self) -> None:
        self._eof = False
        self._empty_waiter = None
        self._conn_lost = 0
        self._buffer = bytearray()
        self._sock = _Socket()
        self._closing = False

    def write(self, data: bytes) -> None:
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError(type(data).__name__)
        if self._eof:
            raise RuntimeError("Cannot call write() after write_eof()")
        if self._empty_waiter is not None:
            raise RuntimeError("unable to write; sendfile is in progress")
        if not data:
            return
        if self._conn_lost:
            self._conn_lost += 1
            return
        if not self._buffer:
            try:
                n = self._sock.send(data)
            except (BlockingIOError, InterruptedError):
                pass
            else:
                data = data[n:]
                if not data:
                    return
        self._buffer.extend(data)

    def is_closing(self) -> bool:
        return self._closing

    def get_write_buffer_size(self) -> int:
        return len(self._buffer)

    def get_extra_info(self, _name: str, default: Any = None) -> Any:
        return default


class _Ws:
    """What `Connection` reads of aiohttp's response on the write path."""

    closed = False
    compress = 0


class _Owner:
    def __init__(self) -> None:
        self.flusher = Flusher()

    def disconnect(self, _conn: Connection) -> None:
        pass


class _Protocol:
    _paused = False


def _message(seq: int) -> dict[str, Any]:
    return {"type": "event", "topic": TOPIC, "seq": seq, "payload": PAYLOAD}


async def bare(subscribers: int, events: int) -> float:
    """µs per frame of aiohttp's send path."""
    clients = []
    for _ in range(subscribers):
        ws = web.WebSocketResponse()
        ws._writer = WebSocketWriter(_Protocol(), Transport(), compress=0)  # type: ignore[arg-type]
        clients.append(ws)
    gc.collect()
    started = time.perf_counter()
    for seq in range(1, events + 1):
        frame = json.dumps(_message(seq), separators=(",", ":"))
        for ws in clients:
            await ws.send_str(frame)
    return (time.perf_counter() - started) / (subscribers * events) * 1e6


async def hub(subscribers: int, events: int) -> float:
    """µs per frame of the hub's route and flush."""
    owner, router, conns = _Owner(), Router(), []
    for i in range(subscribers):
        ws, transport = _Ws(), Transport()
        conn = Connection(
            ws,  # type: ignore[arg-type]
            transport,  # type: ignore[arg-type]
            f"c{i}",
            writer=TransportWriter(ws, transport),  # type: ignore[arg-type]
            max_queue_bytes=1 << 20,
            close_timeout_s=1,
            owner=owner,
        )
        sub, _new = conn.state.subscribe(TOPIC)
        router.attach(sub)
        conn.state.go_live(sub, sub.epoch, 0, Frame(snapshot_frame(TOPIC, 0, b"{}")))
        conns.append(conn)
    owner.flusher._flush()
    payload = json.dumps(PAYLOAD, separators=(",", ":")).encode()
    gc.collect()
    started = time.perf_counter()
    for seq in range(1, events + 1):
        router.queue(TOPIC, seq, payload)
        router.fan_out()
        owner.flusher._flush()
    per_frame = (time.perf_counter() - started) / (subscribers * events) * 1e6
    delivered = sum(conn.state.subscriptions[TOPIC].last_seq for conn in conns)
    if delivered != subscribers * events:
        raise SystemExit(f"hub: {delivered} frames routed, {subscribers * events} expected")
    return per_frame


async def floor(subscribers: int, events: int) -> float:
    """µs per frame of the least a coalescing server can do: the issue's throwaway
    prototype, with no ordering state, no budget and no closed checks - an append
    per subscriber, then one `transport.write` per connection per tick."""
    transports = [Transport() for _ in range(subscribers)]
    queues: list[list[bytes]] = [[] for _ in range(subscribers)]
    payload = json.dumps(PAYLOAD, separators=(",", ":")).encode()
    gc.collect()
    started = time.perf_counter()
    for seq in range(1, events + 1):
        wire = Frame(b'{"type":"event","topic":"bench","seq":%d,"payload":%s}' % (seq, payload)).wire
        dirty = []
        for queue, transport in zip(queues, transports, strict=True):
            if not queue:
                dirty.append((queue, transport))
            queue.append(wire)
        for queue, transport in dirty:
            transport.write(queue[0] if len(queue) == 1 else b"".join(queue))
            queue.clear()
    return (time.perf_counter() - started) / (subscribers * events) * 1e6


PATHS = {"bare": bare, "hub": hub, "floor": floor}


async def run(subscribers: int, events: int, repeat: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {name: [] for name in PATHS}
    for _ in range(repeat):
        for name, path in PATHS.items():
            results[name].append(await path(subscribers, events))
    return results


def main(argv: list[str] | None = None) -> dict[str, list[float]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=2000)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    results = asyncio.run(run(args.subscribers, args.events, args.repeat))
    size = f"{args.subscribers} subscribers x {args.events} events"
    print(f"Python per delivered frame, send() excluded: {size}")
    print("repeat     bare µs    hub µs  floor µs   hub/bare floor/bare")
    rows = zip(results["bare"], results["hub"], results["floor"], strict=True)
    for i, (b, h, f) in enumerate(rows, 1):
        print(f"{i:>6} {b:>11.3f} {h:>9.3f} {f:>9.3f} {h / b:>10.2f} {f / b:>10.2f}")
    b, h, f = (statistics.median(results[name]) for name in ("bare", "hub", "floor"))
    print(f"median {b:>11.3f} {h:>9.3f} {f:>9.3f} {h / b:>10.2f} {f / b:>10.2f}")
    return results


if __name__ == "__main__":
    main()
