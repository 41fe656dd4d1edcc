"""Slow-consumer eviction: bounded memory, and nobody else waits for the slow one."""

from __future__ import annotations

import array
import asyncio
import fcntl
import termios

import aiohttp

from tests.support import StuckClient, WsClient

BIG = 4000  # bytes per event value


async def _server_conn(hub, known):
    """The server-side Connection that appeared since `known` was taken."""
    [conn] = hub.connections - known
    return conn


async def test_stuck_client_is_evicted_and_its_memory_released_fast_client_unaffected(lib_client):
    client, hub, state, _ = await lib_client(max_queue_bytes=64 * 1024, close_timeout_s=0.2)
    fast = await WsClient.connect(client)
    await fast.subscribe("items")
    assert (await fast.recv())["type"] == "snapshot"

    known = set(hub.connections)
    stuck = await StuckClient.connect(client.host, client.port, ["items"])
    slow = await _server_conn(hub, known)
    while "items" not in slow.subscriptions or not slow.subscriptions["items"].live:
        await fast.barrier()  # lets the server process the stuck client's subscribe

    seqs = []
    for i in range(5000):  # bounded; eviction needs ~64 KiB + kernel buffers
        seq = await state.set(hub, "v" * BIG, i)
        frame = await fast.recv()  # lock-step: the fast client gets each event at once
        assert (frame["seq"], frame["payload"]["value"]) == (seq, i)
        seqs.append(frame["seq"])
        if slow.closing:
            break
    else:
        raise AssertionError("the stuck client was never evicted")

    assert slow.close_code == 4008
    await asyncio.wait_for(slow.wait_closed(), 5)
    assert slow.buffered_bytes == 0  # queue discarded, transport buffer aborted
    assert slow not in hub.connections
    assert hub.subscriber_count("items") == 1
    assert seqs == list(range(1, len(seqs) + 1))
    # The fast client goes on, in order, with no gap.
    last = await hub.publish("items", {"op": "set", "key": "x", "value": -1})
    assert [f["seq"] for f in await fast.barrier()] == [last] == [seqs[-1] + 1]
    stuck.close()


async def test_overflow_is_closed_with_4008_when_the_socket_can_still_take_it(lib_client):
    client, hub, state, _ = await lib_client(max_queue_bytes=32 * 1024)
    ws = await WsClient.connect(client)
    await ws.subscribe("items")
    assert (await ws.recv())["type"] == "snapshot"
    [conn] = hub.connections
    # One burst with no await point in between (fanned out at the end of the tick,
    # 25 times the budget): the client reads nothing meanwhile, so the queue
    # overflows - yet the socket stays writable and the client reads what was
    # written before the eviction, and the close, later.
    for i in range(20):
        await state.set(hub, "v" * 10 * BIG, i)
    msg = await ws.ws.receive(timeout=5)
    while msg.type is aiohttp.WSMsgType.TEXT:  # frames written before the eviction
        msg = await ws.ws.receive(timeout=5)
    assert (msg.type, msg.data, msg.extra) == (aiohttp.WSMsgType.CLOSE, 4008, "slow consumer")
    assert conn.close_code == 4008


async def test_events_buffered_during_a_snapshot_count_against_the_limit(lib_client):
    client, hub, state, _ = await lib_client(max_queue_bytes=16 * 1024)
    ws = await WsClient.connect(client)
    state.gate.armed = True
    await ws.subscribe("items")
    await state.gate.reached.wait()
    [conn] = hub.connections
    for i in range(10):
        await state.set(hub, "v" * BIG, i)
    # Held for the snapshot still being built (the gate is closed): 40 KB against a
    # 16 KB budget evicts the client without waiting for the snapshot.
    await asyncio.wait_for(conn.wait_closed(), 5)
    assert conn.close_code == 4008
    assert conn.buffered_bytes == 0
    state.gate.release()


def _kernel_queue(transport: asyncio.BaseTransport) -> int:
    """Bytes the kernel holds for the server's socket (TIOCOUTQ), measured here
    independently of the library's own accounting."""
    buf = array.array("i", [0])
    fcntl.ioctl(transport.get_extra_info("socket").fileno(), termios.TIOCOUTQ, buf, True)
    return buf[0]


async def test_a_client_that_stops_reading_costs_at_most_its_budget_kernel_included(lib_client):
    """Everything the server holds for a stuck client - its outbox, the transport's buffer
    and the kernel's send queue - stays within max_queue_bytes + 10 % until eviction.
    Without the kernel counted, Linux's send buffer (autotuned up to 4 MiB) came on top."""
    limit = 256 * 1024
    client, hub, state, _ = await lib_client(max_queue_bytes=limit, close_timeout_s=0.2)
    watcher = await WsClient.connect(client)
    known = set(hub.connections)
    stuck = await StuckClient.connect(client.host, client.port, ["items"])
    slow = await _server_conn(hub, known)
    while "items" not in slow.subscriptions or not slow.subscriptions["items"].live:
        await watcher.barrier()
    transport = slow._transport
    held = []
    for i in range(2000):
        await state.set(hub, "v" * BIG, i)
        await watcher.barrier()  # a loop turn: the flusher has written this event
        if slow.closing:
            break
        held.append(slow.buffered_bytes + _kernel_queue(transport))
    else:
        raise AssertionError("the stuck client was never evicted")
    assert slow.close_code == 4008
    assert max(held) > limit // 2  # it did fill up (the kernel took its share)
    assert max(held) <= limit * 1.1, f"held {max(held)} bytes for a {limit}-byte budget"
    await asyncio.wait_for(slow.wait_closed(), 5)
    stuck.close()
