"""The simulator produces live traffic that clients can follow exactly."""

from __future__ import annotations

from backend.api import SERVICE_KEY
from backend.simulator import MAX_SESSIONS, MAX_TERMINALS, MAX_TURNS, PROMPTS, SENTENCES, Simulator
from backend.store import Store
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
        if watched is None and (sessions_now := await service.store.sessions()):
            watched = sessions_now[0].id
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
    assert sessions == {s.id: s.model_dump(mode="json") for s in await store.sessions()}
    assert terminals == {t.id: t.model_dump(mode="json") for t in await store.terminals()}
    assert len(sessions) >= 3 and terminals
    if await store.session(watched) is not None:
        expected = {m.id: m.model_dump(mode="json") for m in await store.messages(watched)}
        assert activity == expected
    kinds = {f["payload"].get("op") for f in frames if f["type"] == "event"}
    assert {"upsert", "append", "delta", "end"} <= kinds


async def sizes(store: Store) -> dict[str, int]:
    logs = [await store.messages(s.id) for s in await store.sessions()]
    return {
        "sessions": len(logs),
        "terminals": len(await store.terminals()),
        "messages per session": max(map(len, logs), default=0),
    }


async def text_bytes_per_session(store: Store) -> int:
    logs = [await store.messages(s.id) for s in await store.sessions()]
    return max((sum(len(m.text.encode()) for m in log) for log in logs), default=0)


async def test_the_simulation_stays_bounded_forever(demo_client):
    """After an hour it looks as after a minute: 3,000 steps reach no count that the
    first 300 did not, no session holds more text than its turns' longest replies,
    nothing outlives its session, and the text varies."""
    client = await demo_client()
    service = client.app[SERVICE_KEY]
    store = service.store
    sim = Simulator(service, tick_s=0, seed=11)  # tick 0: each stream token yields once, no timer
    early: dict[str, int] = {}
    late: dict[str, int] = {}
    seen_texts: set[str] = set()
    longest_reply = len(" ".join(sorted(SENTENCES, key=len)[-4:])) + 1  # streamed tokens end in " "
    max_text_bytes = MAX_TURNS * (max(map(len, PROMPTS)) + longest_reply)
    for step in range(3000):
        await sim.step()
        peaks = early if step < 300 else late
        for name, size in (await sizes(store)).items():
            peaks[name] = max(peaks.get(name, 0), size)
        assert await text_bytes_per_session(store) <= max_text_bytes
        sessions = {s.id for s in await store.sessions()}
        assert all(t.session_id in sessions for t in await store.terminals()), "an orphaned terminal"
        for sid in sessions:
            seen_texts.update(m.text for m in await store.messages(sid) if not m.streaming)
    assert late["sessions"] <= MAX_SESSIONS
    assert late["terminals"] <= MAX_TERMINALS
    assert late["messages per session"] <= 2 * MAX_TURNS
    assert all(late[name] <= early[name] for name in early), (early, late)
    assert len(seen_texts) > 50
