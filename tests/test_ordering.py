"""The ordering guarantees of docs/protocol.md, each over a real socket."""

from __future__ import annotations

import asyncio

from tests.support import WsClient, until


async def test_first_frame_is_hello_with_limits(lib_client):
    client, hub, *_ = await lib_client(max_queue_bytes=12345, max_topics=7)
    ws = await WsClient.connect(client)
    assert ws.hello["protocol"] == 1
    assert ws.hello["max_queue_bytes"] == 12345
    assert ws.hello["max_topics"] == 7
    assert ws.hello["heartbeat_s"] == hub.settings.heartbeat_s
    assert ws.hello["server_time"].endswith("Z")


async def test_snapshot_comes_before_any_event_of_its_topic(lib_client):
    client, hub, state, _ = await lib_client()
    await state.set(hub, "x", 1)
    ws = await WsClient.connect(client)
    state.gate.armed = True
    await ws.subscribe("items")
    await state.gate.reached.wait()  # the provider is running: the subscription exists
    await state.set(hub, "x", 2)
    await state.set(hub, "y", 3)
    state.gate.release()
    frames = await ws.barrier()
    assert [f["type"] for f in frames] == ["snapshot", "event", "event"]
    snapshot, *events = frames
    # The seq was read before the provider ran, so both events follow it; the
    # snapshot already reflects them (idempotent sets), and none is lost. (The first
    # set had no subscriber to number it for: the snapshot carries it, at seq 0.)
    assert snapshot["seq"] == 0
    assert [e["seq"] for e in events] == [1, 2]
    assert snapshot["payload"]["items"] == {"x": 2, "y": 3}


async def test_events_buffered_before_the_snapshot_seq_are_dropped(lib_client):
    client, hub, state, broker = await lib_client()
    ws = await WsClient.connect(client)
    broker.gate.armed = True  # hold the subscribe between registering and reading the seq
    await ws.subscribe("items")
    await broker.gate.reached.wait()
    for value in range(1, 4):
        await state.set(hub, "x", value)  # buffered, seq 1..3
    broker.gate.release()
    frames = await ws.barrier()
    # last_seq reads 3 after the buffered events: the snapshot reflects them all,
    # so they are not delivered again (no duplicate seq).
    assert [(f["type"], f["seq"]) for f in frames] == [("snapshot", 3)]
    assert frames[0]["payload"]["items"] == {"x": 3}
    await state.set(hub, "x", 4)
    assert await ws.barrier() == [
        {"type": "event", "topic": "items", "seq": 4, "payload": {"op": "set", "key": "x", "value": 4}}
    ]


async def test_seq_grows_by_one_per_event_without_gaps(lib_client):
    client, hub, state, _ = await lib_client()
    ws = await WsClient.connect(client)
    await ws.subscribe("items")
    assert (await ws.recv())["seq"] == 0
    for i in range(50):
        await state.set(hub, f"k{i % 5}", i)
    frames = await ws.barrier()
    assert [f["seq"] for f in frames] == list(range(1, 51))


async def test_seq_is_per_topic(lib_client):
    client, hub, state, _ = await lib_client()
    ws = await WsClient.connect(client)
    await ws.subscribe("items", "items.b")
    await ws.barrier()
    await state.set(hub, "x", 1)
    await state.set(hub, "x", 1, group="b")
    await state.set(hub, "y", 2, group="b")
    frames = await ws.barrier()
    assert [(f["topic"], f["seq"]) for f in frames] == [("items", 1), ("items.b", 1), ("items.b", 2)]


async def test_resubscribe_sends_a_fresh_snapshot_and_continues(lib_client):
    client, hub, state, _ = await lib_client()
    ws = await WsClient.connect(client)
    await ws.subscribe("items")
    await ws.barrier()
    await state.set(hub, "x", 1)
    await ws.subscribe("items")
    frames = await ws.barrier()
    assert [(f["type"], f["seq"]) for f in frames] == [("event", 1), ("snapshot", 1)]
    await state.set(hub, "x", 2)
    assert [(f["type"], f["seq"]) for f in await ws.barrier()] == [("event", 2)]
    assert hub.subscriber_count("items") == 1


async def test_unsubscribe_stops_events(lib_client):
    client, hub, state, _ = await lib_client()
    ws = await WsClient.connect(client)
    await ws.subscribe("items", "items.b")
    await ws.barrier()
    await ws.unsubscribe("items")
    await ws.barrier()
    assert hub.subscriber_count("items") == 0
    await state.set(hub, "x", 1)
    await state.set(hub, "x", 1, group="b")
    frames = await ws.barrier()
    assert [f["topic"] for f in frames] == ["items.b"]


async def test_unknown_topic_is_an_error_and_other_topics_are_served(lib_client):
    client, hub, *_ = await lib_client()
    ws = await WsClient.connect(client)
    await ws.subscribe("nope", "items", "items.zzz", "items.b", id="r1")
    frames = await ws.barrier()
    assert frames[0] == {
        "type": "error",
        "code": "unknown_topic",
        "message": "no such topic",
        "id": "r1",
        "topic": "nope",
    }
    assert (frames[1]["type"], frames[1]["topic"]) == ("snapshot", "items")
    # Matches a pattern, but the provider says the resource does not exist.
    assert (frames[2]["code"], frames[2]["topic"]) == ("unknown_topic", "items.zzz")
    assert (frames[3]["type"], frames[3]["topic"]) == ("snapshot", "items.b")
    assert len(frames) == 4
    assert hub.subscriber_count("items.zzz") == 0


async def test_failing_provider_is_an_error_and_leaves_no_subscription(lib_client):
    client, hub, state, _ = await lib_client()
    ws = await WsClient.connect(client)
    state.fail = True
    await ws.subscribe("items")
    [frame] = await ws.barrier()
    assert (frame["type"], frame["code"], frame["topic"]) == ("error", "snapshot_failed", "items")
    assert hub.subscriber_count("items") == 0
    await state.set(hub, "x", 1)
    assert await ws.barrier() == []


async def test_slow_provider_times_out_as_snapshot_failed(lib_client):
    client, hub, state, _ = await lib_client(snapshot_timeout_s=0.05)
    ws = await WsClient.connect(client)
    state.gate.armed = True  # never released
    await ws.subscribe("items")
    [frame] = await ws.barrier()
    assert (frame["code"], frame["topic"]) == ("snapshot_failed", "items")
    assert hub.subscriber_count("items") == 0


async def test_topic_limit(lib_client):
    client, _hub, *_ = await lib_client(max_topics=1)
    ws = await WsClient.connect(client)
    await ws.subscribe("items", "items.b")
    frames = await ws.barrier()
    assert frames[0]["type"] == "snapshot"
    assert (frames[1]["code"], frames[1]["topic"]) == ("too_many_topics", "items.b")
    await ws.subscribe("items")  # re-subscribing an existing topic is not a new one
    assert [f["type"] for f in await ws.barrier()] == ["snapshot"]


async def test_disconnect_releases_subscriptions(lib_client):
    client, hub, *_ = await lib_client()
    ws = await WsClient.connect(client)
    await ws.subscribe("items")
    await ws.barrier()
    assert hub.subscriber_count("items") == 1
    [conn] = hub.connections
    await ws.close()
    await asyncio.wait_for(conn.wait_closed(), 5)
    assert hub.subscriber_count("items") == 0
    assert not hub.connections


async def test_a_snapshot_larger_than_the_budget_is_refused_not_an_eviction(lib_client):
    """A topic whose snapshot can never fit the client's buffer gets `snapshot_too_large`
    for that topic only; evicting would make the client reconnect into the same eviction."""
    client, hub, state, _ = await lib_client(max_queue_bytes=8 * 1024)
    for i in range(4):
        await state.set(hub, f"k{i}", i)
    state.items["a"].update({f"{'x' * 3000}{i}": i for i in range(4)})  # ~12 KB snapshot
    await state.set(hub, "y", 1, group="b")
    ws = await WsClient.connect(client)
    await ws.subscribe("items", "items.b", id="s1")
    error, snapshot = await ws.barrier()
    assert (error["type"], error["code"], error["topic"], error["id"]) == (
        "error",
        "snapshot_too_large",
        "items",
        "s1",
    )
    assert (snapshot["type"], snapshot["topic"]) == ("snapshot", "items.b")
    assert hub.subscriber_count("items") == 0 and hub.subscriber_count("items.b") == 1
    [conn] = hub.connections
    assert not conn.closing  # served on, not evicted
    await state.set(hub, "z", 2, group="b")
    await state.set(hub, "k0", 9)  # "items" is not subscribed: nothing arrives for it
    assert [(f["topic"], f["seq"]) for f in await ws.barrier()] == [("items.b", 1)]


async def test_no_subscriber_reads_the_seq_before_the_broker_delivers_the_topic(lib_client):
    """The first local subscriber asks the broker to deliver the topic here; a second
    one arriving meanwhile waits for that answer too, instead of reading a seq whose
    events might never reach this node."""
    client, hub, state, broker = await lib_client()
    first, second = await WsClient.connect(client), await WsClient.connect(client)
    broker.watch_gate.armed = True
    await first.subscribe("items")
    await broker.watch_gate.reached.wait()
    await second.subscribe("items")
    await until(lambda: hub.subscriber_count("items") == 2)  # registered, waiting for the watch
    for _ in range(10):
        await asyncio.sleep(0)  # room for a wrong implementation to read the seq early
    assert broker.watches == ["items"] and broker.seq_reads == []
    broker.watch_gate.release()
    [snap1], [snap2] = await first.barrier(), await second.barrier()
    assert snap1["type"] == snap2["type"] == "snapshot"
    assert broker.watches == ["items"] and broker.seq_reads == ["items", "items"]
    assert await state.set(hub, "x", 1) == 1
    assert [f["seq"] for f in await first.barrier()] == [f["seq"] for f in await second.barrier()] == [1]
