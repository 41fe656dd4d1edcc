from tests.support import WsClient


async def test_subscribe_gets_snapshot_then_events(demo_client):
    client = await demo_client()
    ws = await WsClient.connect(client)
    await ws.subscribe("sessions.state")
    snap = await ws.recv()
    assert snap == {"type": "snapshot", "topic": "sessions.state", "seq": 0, "payload": {"sessions": []}}
    resp = await client.post("/api/sessions", json={"title": "hello"})
    assert resp.status == 201
    event = await ws.recv()
    assert event["type"] == "event" and event["seq"] == 1
    assert event["payload"]["op"] == "upsert"
    assert event["payload"]["session"]["title"] == "hello"
