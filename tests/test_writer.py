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
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from aiohttp_realtime.frames import Frame
from aiohttp_realtime.writer import AiohttpWriter, Flusher, TransportWriter, Writer

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
    def __init__(self, name: str, calls: list[str], fail: bool = False) -> None:
        self.name, self.calls, self.fail = name, calls, fail

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
    flusher.wake()  # events were queued: a tick even though nothing is marked yet
    flusher.wake()  # one tick, however many wake-ups
    assert calls == []
    await asyncio.sleep(0)  # one loop turn: the tick
    assert calls == ["prepare", "from-prepare"]
    await asyncio.sleep(0)
    assert calls == ["prepare", "from-prepare"]  # no second tick was scheduled by the mark


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
