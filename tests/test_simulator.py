"""The simulator produces live traffic that clients can follow exactly."""

from __future__ import annotations

from backend.api import SERVICE_KEY
from backend.simulator import Simulator
from tests.support import WsClient
from tests.test_demo_topics import apply_activity


def apply_collection(state: dict, frame: dict, key: str, item: str) -> None:
    p = frame["payload"]
    if frame["type"] == "snapshot":
        state.clear()
        state.update({x["id"]: x for x in p[key]})
    elif p["op"] == "upsert":
        state[p[item]["id"]] = p[item]
    else:
        state.pop(p["id"], None)


async def test_clients_follow_the_simulation_exactly(demo_client):
    client = await demo_client()
    service = client.app[SERVICE_KEY]
    sim = Simulator(service, tick_s=0.0005, seed=7)
    ws = await WsClient.connect(client)
    await ws.subscribe("sessions.state", "terminals.state")
    sessions: dict = {}
    terminals: dict = {}
    activity: dict = {}
    watched = None
    for _ in range(60):
        await sim.step()
        if watched is None and service.store.sessions():
            watched = service.store.sessions()[0].id
            await ws.subscribe(f"sessions.activity:{watched}")
    frames = await ws.barrier()
    await service.close()
    frames += await ws.barrier()
    for frame in frames:
        if frame["topic"] == "sessions.state":
            apply_collection(sessions, frame, "sessions", "session")
        elif frame["topic"] == "terminals.state":
            apply_collection(terminals, frame, "terminals", "terminal")
        else:
            apply_activity(activity, frame)
    store = service.store
    assert sessions == {s.id: s.model_dump(mode="json") for s in store.sessions()}
    assert terminals == {t.id: t.model_dump(mode="json") for t in store.terminals()}
    assert len(sessions) >= 3 and terminals
    if store.session(watched) is not None:
        expected = {m.id: m.model_dump(mode="json") for m in store.messages(watched)}
        assert activity == expected
    kinds = {f["payload"].get("op") for f in frames if f["type"] == "event"}
    assert {"upsert", "append", "delta", "end"} <= kinds
