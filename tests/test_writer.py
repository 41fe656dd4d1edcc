"""The writer contract, one suite for both writers (aiohttp-realtime/writer.py), and the flusher.

What a writer accepts (frames, in order, never awaiting), when it writes (now, in order,
after everything before; between aiohttp's own frames, never inside one), how it reports
backpressure (`in_flight`: transport buffer + kernel queue, growing while the peer does
not read). Over real sockets, against the aiohttp version installed: an aiohttp upgrade
that changed how it writes frames would fail here.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aiohttp_realtime.frames import Frame
from aiohttp_realtime.writer import AiohttpWriter, Flusher, TransportWriter, Writer
from tests.support import WsClient

WRITERS: dict[str, Callable[[web.WebSocketResponse, asyncio.Transport], Writer]] = {
    "transport": TransportWriter,
    "aiohttp": AiohttpWriter,
}


@dataclass
class Server:
    ws: web.WebSocketResponse
    transport: asyncio.Transport
    writer: Writer
    done: asyncio.Event


@pytest.fixture(params=list(WRITERS))
async def serve(request: pytest.FixtureRequest, aiohttp_server: Any) -> AsyncIterator[Any]:
    """Start a server whose handler hands its socket to the test; yields `connect()`."""
    make = WRITERS[request.param]
    servers: asyncio.Queue[Server] = asyncio.Queue()

    async def handler(req: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None, compress=request.param == "aiohttp")
        await ws.prepare(req)
        assert req.transport is not None
        done = asyncio.Event()
        await servers.put(Server(ws, req.transport, make(ws, req.transport), done))
        async for _msg in ws:  # the receive loop answers pings and sees the close
            pass
        done.set()
        return ws

    app = web.Application()
    app.router.add_get("/", handler)
    server = await aiohttp_server(app)

    async def connect(**kwargs: Any) -> tuple[aiohttp.ClientWebSocketResponse, Server]:
        session = aiohttp.ClientSession()
        sessions.append(session)
        ws = await session.ws_connect(server.make_url("/"), **kwargs)
        return ws, await servers.get()

    sessions: list[aiohttp.ClientSession] = []
    yield connect
    for session in sessions:
        await session.close()


def frames(*texts: str) -> list[Frame]:
    return [Frame(t.encode()) for t in texts]


async def test_frames_arrive_whole_and_in_order(serve: Any) -> None:
    client, server = await serve()
    server.writer.write(frames("a", "b" * 70_000, "c"))
    server.writer.write(frames("d"))
    got = [(await client.receive()).data for _ in range(4)]
    assert got == ["a", "b" * 70_000, "c", "d"]


async def test_writes_interleave_with_aiohttps_own_frames_only_between_frames(serve: Any) -> None:
    client, server = await serve(autoping=False)
    server.writer.write(frames("one"))
    await server.ws.ping(b"p1")
    server.writer.write(frames("two", "three"))
    await server.ws.ping(b"p2")
    server.writer.write(frames("four"))
    seen = [(m.type.name, m.data) for m in [await client.receive() for _ in range(6)]]
    # Every frame whole (the client parsed them), data in order, both pings.
    assert [d for t, d in seen if t == "TEXT"] == ["one", "two", "three", "four"]
    assert [d for t, d in seen if t == "PING"] == [b"p1", b"p2"]
    if isinstance(server.writer, TransportWriter):  # direct writes go out at once, in call order
        assert seen == [
            ("TEXT", "one"),
            ("PING", b"p1"),
            ("TEXT", "two"),
            ("TEXT", "three"),
            ("PING", b"p2"),
            ("TEXT", "four"),
        ]


async def test_nothing_is_written_after_aiohttps_close_frame(serve: Any) -> None:
    client, server = await serve()
    server.writer.write(frames("before"))
    closing = asyncio.create_task(server.ws.close(code=4000, message=b"bye"))
    assert (await client.receive()).data == "before"
    msg = await client.receive()
    assert (msg.type, msg.data) == (aiohttp.WSMsgType.CLOSE, 4000)
    server.writer.write(frames("after"))  # dropped, not written behind the close
    await client.close()
    await closing
    assert server.transport.is_closing() or server.ws.closed


async def test_in_flight_grows_while_the_peer_does_not_read_and_drains_after(serve: Any) -> None:
    client, server = await serve()
    sock = server.transport.get_extra_info("socket")
    assert sock is not None and sock.family == socket.AF_INET
    chunk = "x" * 60_000
    for _ in range(100):  # 6 MB: more than the kernel's buffers on both sides
        server.writer.write(frames(chunk))
        await asyncio.sleep(0)
    assert server.writer.in_flight > 1 << 20
    for _ in range(100):
        assert (await client.receive()).data == chunk
    async with asyncio.timeout(5):
        while server.writer.in_flight:  # noqa: ASYNC110 - the kernel has no event for its ACKs
            await asyncio.sleep(0.01)


async def test_transport_writer_writes_a_batch_as_one_syscall_sized_write() -> None:
    """The direct writer joins a batch into one transport.write (one send)."""
    writes: list[bytes] = []

    class Transport:
        def is_closing(self) -> bool:
            return False

        def write(self, data: bytes) -> None:
            writes.append(data)

        def get_extra_info(self, _name: str) -> None:
            return None

    class Ws:
        closed = False

    writer = TransportWriter(Ws(), Transport())  # type: ignore[arg-type]
    batch = frames("a", "b", "c")
    writer.write(batch)
    assert writes == [b"".join(f.wire for f in batch)]


async def test_a_batch_is_joined_once_per_tick_and_only_shared_when_it_is_the_same_frames() -> None:
    """Subscribers owed the same burst share one join; a batch that differs anywhere
    (here only in its middle frame) gets its own bytes."""
    from aiohttp_realtime import writer as writer_module

    a1, b1, c1, a2 = frames("a1", "b1", "c1", "a2")
    first = writer_module.joined([a1, b1, a2])
    assert writer_module.joined([a1, b1, a2]) is first  # the same frames: shared
    other = writer_module.joined([a1, c1, a2])
    assert other == a1.wire + c1.wire + a2.wire and other != first
    # Equal text is not the same frame: never assumed, always joined from its own frames.
    twin = frames("a1")[0]
    assert writer_module.joined([twin, c1, a2]) == twin.wire + c1.wire + a2.wire
    # The flusher forgets the last batch at the end of its tick: nothing is pinned.
    flusher = Flusher()
    flusher.mark(Marked("x", []))
    await asyncio.sleep(0)
    assert writer_module._last_joined is None


class Marked:
    def __init__(self, name: str, calls: list[str], fail: bool = False, pending: int = 0) -> None:
        self.name, self.calls, self.fail = name, calls, fail
        self.state = SimpleNamespace(pending=pending)  # the outbox's queued bytes

    def flush(self) -> None:
        if self.fail:
            raise RuntimeError("boom")
        self.calls.append(self.name)


async def test_the_flusher_runs_each_marked_flush_once_on_the_next_tick() -> None:
    flusher, calls = Flusher(), []
    flusher.mark(Marked("a", calls))
    flusher.mark(Marked("b", calls))
    assert calls == []  # not synchronously: a burst in this tick coalesces
    await asyncio.sleep(0)
    assert calls == ["a", "b"]
    flusher.mark(Marked("c", calls))
    await asyncio.sleep(0)
    assert calls == ["a", "b", "c"]


async def test_prepare_runs_first_in_the_tick_and_what_it_marks_is_written_in_that_tick() -> None:
    calls: list[str] = []
    flusher: Flusher

    def prepare() -> None:  # the hub's fan-out: marks the connections it gave frames
        calls.append("prepare")
        flusher.mark(Marked("from-prepare", calls))

    flusher = Flusher(prepare=prepare)
    flusher.mark(Marked("queued", calls))  # a tick is pending: events join it
    flusher.wake()  # events were queued
    flusher.wake()  # one tick, however many wake-ups
    assert calls == []
    await asyncio.sleep(0)  # one loop turn: the tick
    assert calls == ["prepare", "queued", "from-prepare"]
    await asyncio.sleep(0)
    assert calls == ["prepare", "queued", "from-prepare"]  # no second tick was scheduled by the mark


async def test_bulk_writes_wait_for_the_small_ones_and_spread_over_ticks(monkeypatch: Any) -> None:
    """A storm's snapshots (bulk) do not hold a live client's event (small) behind them:
    small first, then bulk in the order they became ready, within a time budget per
    tick (here none: one bulk write per tick), the rest in the next ticks."""
    from aiohttp_realtime import writer as writer_module

    monkeypatch.setattr(writer_module, "BULK_TICK_S", 0.0)
    big = writer_module.BULK_ABOVE + 1
    flusher, calls = Flusher(), []
    for name in ("snap1", "snap2", "snap3"):
        flusher.mark(Marked(name, calls, pending=big))
    flusher.mark(Marked("live1", calls, pending=writer_module.BULK_ABOVE))
    await asyncio.sleep(0)
    assert calls == ["live1", "snap1"]
    flusher.mark(Marked("live2", calls))  # ready while the bulk waits: goes first
    await asyncio.sleep(0)
    assert calls == ["live1", "snap1", "live2", "snap2"]
    await asyncio.sleep(0)  # no new mark: the flusher scheduled the next tick itself
    assert calls == ["live1", "snap1", "live2", "snap2", "snap3"]


class Clock:
    """`writer.time.perf_counter`, moved by hand."""

    def __init__(self, monkeypatch: Any) -> None:
        from aiohttp_realtime import writer as writer_module

        self.now = 100.0
        monkeypatch.setattr(writer_module.time, "perf_counter", lambda: self.now)

    def advance(self, seconds: float) -> None:
        self.now += seconds


def counting_flusher() -> tuple[Flusher, list[str]]:
    calls: list[str] = []
    return Flusher(prepare=lambda: calls.append("prepare")), calls


async def test_an_event_joins_the_tick_unless_a_crowd_of_callbacks_is_ahead_of_it(monkeypatch: Any) -> None:
    """A calm loop: the tick runs soon, and the events published until then (a burst)
    go out in one write per connection. With more than AHEAD_MAX callbacks queued
    ahead of the tick - the first iteration of a storm, thousands of handshakes - the
    event is written at once; the rest of its burst still coalesces into the tick."""
    from aiohttp_realtime import writer as writer_module

    clock = Clock(monkeypatch)
    flusher, calls = counting_flusher()
    flusher.wake()
    flusher.wake()
    assert calls == []
    await asyncio.sleep(0)  # the tick
    assert calls == ["prepare"]
    clock.advance(1.0)
    loop = asyncio.get_running_loop()
    for _ in range(writer_module.AHEAD_MAX + 1):
        loop.call_soon(lambda: None)  # a crowd ahead of any tick scheduled now
    flusher.wake()
    assert calls == ["prepare"] * 2  # at once
    for _ in range(3):
        flusher.wake()  # the rest of the burst, the same instant
    assert calls == ["prepare"] * 2
    await asyncio.sleep(0)
    assert calls == ["prepare"] * 3


async def test_the_crowd_ahead_of_a_tick_is_read_from_asyncios_ready_queue() -> None:
    """`Flusher._ahead` reads asyncio's queue of ready callbacks (a private attribute of
    CPython's event loop): if it moved, this fails - and every event would be written
    at once (correct, but a burst would cost two writes per subscriber)."""
    flusher = Flusher()
    loop = asyncio.get_running_loop()
    before = flusher._ahead()
    for _ in range(200):
        loop.call_soon(lambda: None)
    assert flusher._ahead() == before + 200


async def test_a_congested_loop_writes_an_event_at_once_a_calm_one_joins_the_pending_tick(
    monkeypatch: Any,
) -> None:
    """With a tick pending (connections were marked), an event joins it - unless the loop
    is congested: the last tick ran more than EAGER_AFTER_S late, or the pending one
    has already waited that long (a storm's long iteration)."""
    from aiohttp_realtime import writer as writer_module

    gap, after = writer_module.EAGER_GAP_S, writer_module.EAGER_AFTER_S
    clock = Clock(monkeypatch)
    flusher, calls = counting_flusher()
    other: list[str] = []
    flusher.mark(Marked("x", other))  # a tick is pending, scheduled now
    clock.advance(gap * 2)
    flusher.wake()  # a young pending tick, a loop keeping up: batched
    assert calls == []
    clock.advance(after)  # the pending tick has now waited longer than EAGER_AFTER_S
    flusher.wake()
    assert calls == ["prepare"]
    clock.advance(0.3)
    await asyncio.sleep(0)  # the tick itself ran 300 ms late
    assert calls == ["prepare"] * 2
    flusher.mark(Marked("y", other))  # a new pending tick, just scheduled
    clock.advance(gap * 2)
    flusher.wake()  # the last tick lagged: congested, at once
    assert calls == ["prepare"] * 3
    clock.advance(gap / 2)
    flusher.wake()  # within the gap: a burst coalesces into the tick
    assert calls == ["prepare"] * 3
    await asyncio.sleep(0)  # this tick is on time: the loop keeps up again
    assert calls == ["prepare"] * 4
    flusher.mark(Marked("z", other))
    clock.advance(gap * 2)
    flusher.wake()
    assert calls == ["prepare"] * 4  # batched


async def test_due_writes_an_event_that_waited_past_the_gap(monkeypatch: Any) -> None:
    """`due` (the handlers call it between a client's frames) does the tick's work if an
    event has waited more than EAGER_GAP_S: in a storm the library's own code runs
    between the events, the tick only at the iteration's end."""
    from aiohttp_realtime import writer as writer_module

    gap = writer_module.EAGER_GAP_S
    clock = Clock(monkeypatch)
    flusher, calls = counting_flusher()
    flusher.due()
    assert calls == []  # nothing owed
    written: list[str] = []
    flusher.mark(Marked("live", written))
    clock.advance(gap * 2)
    flusher.wake()  # joins the pending tick
    flusher.due()
    assert calls == []  # it has not waited yet
    clock.advance(gap * 2)
    flusher.due()
    assert calls == ["prepare"] and written == ["live"]
    flusher.due()
    assert calls == ["prepare"]  # nothing owed any more
    await asyncio.sleep(0)
    assert calls == ["prepare"] * 2  # the pending tick still runs (its own queue)


async def test_early_work_leaves_bulk_writes_to_the_ticks(monkeypatch: Any) -> None:
    """Work done at once for an event writes the small connections; a snapshot (bulk)
    waits for a tick, which gives it BULK_TICK_S - live events never wait behind it."""
    from aiohttp_realtime import writer as writer_module

    clock = Clock(monkeypatch)
    flusher, calls = counting_flusher()
    written: list[str] = []
    flusher.mark(Marked("snapshot", written, pending=writer_module.BULK_ABOVE + 1))
    flusher.mark(Marked("live", written))
    clock.advance(writer_module.EAGER_AFTER_S * 2)
    flusher.wake()  # congested: at once
    assert calls == ["prepare"] and written == ["live"]
    await asyncio.sleep(0)
    assert written == ["live", "snapshot"]


async def test_the_handlers_offer_due_between_a_clients_frames(lib_client: Any, monkeypatch: Any) -> None:
    """The WebSocket handler calls `Flusher.due` once open and after each client frame,
    so that a storm's handshakes and subscribes let owed events out."""
    calls: list[int] = []
    original = Flusher.due

    def due(self: Flusher) -> None:
        calls.append(1)
        original(self)

    monkeypatch.setattr(Flusher, "due", due)
    client, _hub, _state, _ = await lib_client()
    ws = await WsClient.connect(client)
    await ws.subscribe("items")
    await ws.barrier()
    await ws.unsubscribe("items")
    await ws.barrier()
    assert len(calls) == 5  # open, then after each frame: subscribe, ping, unsubscribe, ping


async def test_a_failing_flush_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    flusher, calls = Flusher(), []
    flusher.mark(Marked("broken", calls, fail=True))
    flusher.mark(Marked("ok", calls))
    await asyncio.sleep(0)
    assert calls == ["ok"] and "flushing a connection failed" in caplog.text


async def test_in_flight_is_an_upper_bound_that_measures_only_past_64_kib(serve: Any) -> None:
    client, server = await serve()
    if not isinstance(server.writer, TransportWriter):
        pytest.skip("the aiohttp writer always measures")
    server.writer.write(frames("x" * 1000))
    assert (await client.receive()).data == "x" * 1000
    # Read by the peer, but the cheap figure still counts it (never less than the truth)...
    assert server.writer.in_flight >= 1000
    async with asyncio.timeout(5):
        while server.writer.measure():  # noqa: ASYNC110 - the kernel has no event for its ACKs
            await asyncio.sleep(0.01)
    # ...until it is measured: then exact.
    assert server.writer.in_flight == 0
