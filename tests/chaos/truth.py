"""The end-state check: after the faults are healed and the writers stopped, every
follower's state of every topic equals the database's, read over a direct connection
(SQL, shaped by the demo's own models, as its snapshots are), and every node's
`GET /api/sessions` answers the same. A follower that never catches up (deaf) or that
caught up to the last seq with other content (a late or lost event) is a mismatch.

Convergence is awaited (resyncs take backoffs), but a mismatch that stays while nothing
moves any more - outbox empty, Redis seqs unchanged for `STABLE_S`, every follower at
the last seq - is lasting, and reported without waiting out the deadline."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import asyncpg
import redis.asyncio as aioredis

from backend import postgres_sql as sql
from backend.models import Message, Session
from backend.store import KEPT_MESSAGES
from tests.chaos.followers import Follower
from tests.chaos.nodes import REDIS_PREFIX, Node
from tests.chaos.writers import Ledger

STABLE_S = 2.0
#: Followers live but behind, none of them moving (no event, snapshot or close) for this
#: long while Redis is still: they are deaf, not slow.
STILL_S = 5.0
POLL_S = 0.2


@dataclass
class Truth:
    """What the database holds, per topic, as JSON."""

    topics: dict[str, dict[str, Any]] = field(default_factory=dict)
    outbox: int = 0


async def read_truth(db_url: str, topics: set[str]) -> Truth:
    conn = await asyncpg.connect(db_url, timeout=10)
    try:
        truth = Truth(outbox=await conn.fetchval("SELECT count(*) FROM realtime_outbox"))
        for topic in topics:
            if topic == "sessions.state":
                rows = await conn.fetch(sql.SESSIONS)
                truth.topics[topic] = {r["id"]: Session(**r).model_dump(mode="json") for r in rows}
            elif topic.startswith("sessions.activity:"):
                rows = await conn.fetch(sql.MESSAGES, topic.split(":", 1)[1])
                truth.topics[topic] = {r["id"]: Message(**r).model_dump(mode="json") for r in rows}
            else:
                raise ValueError(f"no truth for {topic}")
        return truth
    finally:
        await conn.close()


async def redis_seqs(redis_url: str, topics: list[str]) -> dict[str, int]:
    client = aioredis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        values = await client.mget([f"{REDIS_PREFIX}seq:{t}" for t in topics])
        return {t: int(v) if v is not None else 0 for t, v in zip(topics, values, strict=True)}
    finally:
        await client.aclose()


def _mismatches(followers: list[Follower], truth: Truth, seqs: dict[str, int]) -> list[str]:
    found = []
    for f in followers:
        for topic, view in f.views.items():
            if view.gone:
                continue
            if not view.live:
                found.append(f"{f.name} {topic}: not live (closes {len(f.closes)}, errors {f.errors[-1:]})")
            elif view.seq != seqs[topic]:
                found.append(f"{f.name} {topic}: at seq {view.seq}, Redis at {seqs[topic]}")
            elif view.items != truth.topics[topic]:
                found.append(f"{f.name} {topic}: {_diff(view.items, truth.topics[topic])}")
    return found


def _diff(seen: dict[str, Any], truth: dict[str, Any]) -> str:
    missing = sorted(set(truth) - set(seen))
    extra = sorted(set(seen) - set(truth))
    differ = [k for k in sorted(set(seen) & set(truth)) if seen[k] != truth[k]]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing")
    if extra:
        parts.append(f"{len(extra)} extra")
    if differ:
        k = differ[0]
        shown = {f: (seen[k].get(f), truth[k].get(f)) for f in truth[k] if seen[k].get(f) != truth[k].get(f)}
        parts.append(f"{len(differ)} differ (e.g. {k}: seen/db {shown})")
    return "diverged: " + ", ".join(parts)


@dataclass
class Convergence:
    mismatches: list[str]
    waited_s: float
    outbox_left: int

    @property
    def ok(self) -> bool:
        return not self.mismatches


async def converge(
    followers: list[Follower], *, db_url: str, redis_url: str, timeout: float = 30.0
) -> Convergence:
    """Wait until every follower equals the database (see the module docstring)."""
    topics = sorted({t for f in followers for t in f.views})
    started = time.monotonic()
    stable_since, last_seqs = time.monotonic(), None
    still_since, last_motion = time.monotonic(), None
    found: list[str] = []
    truth = Truth()
    while time.monotonic() - started < timeout:
        truth = await read_truth(db_url, set(topics))
        seqs = await redis_seqs(redis_url, topics)
        now = time.monotonic()
        if seqs != last_seqs or truth.outbox:
            stable_since, last_seqs = now, seqs
        motion = [(f.events, f.connects, len(f.closes), len(f.errors), f.live) for f in followers]
        if motion != last_motion:
            still_since, last_motion = now, motion
        found = _mismatches(followers, truth, seqs)
        if not found:
            return Convergence([], now - started, truth.outbox)
        caught_up = all(
            f.live and all(v.gone or v.seq == seqs[t] for t, v in f.views.items()) for f in followers
        )
        if caught_up and now - stable_since >= STABLE_S:
            break  # nothing moves any more: what differs now stays
        if all(f.live for f in followers) and now - max(stable_since, still_since) >= STILL_S:
            break  # live, behind, and nothing arrives: deaf
        await asyncio.sleep(POLL_S)  # followers and the database have no common event
    return Convergence(found, time.monotonic() - started, truth.outbox)


async def node_reads(nodes: list[Node], db_url: str) -> list[str]:
    """Every node's `GET /api/sessions` equals the database's sessions."""
    truth = (await read_truth(db_url, {"sessions.state"})).topics["sessions.state"]
    found = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
        for node in nodes:
            try:
                async with http.get(f"{node.url}/api/sessions") as resp:
                    body = await resp.json() if resp.status == 200 else None
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                found.append(f"{node.name}: GET /api/sessions failed: {exc!r}")
                continue
            if body is None:
                found.append(f"{node.name}: GET /api/sessions answered {resp.status}")
            elif {s["id"]: s for s in body} != truth:
                found.append(f"{node.name}: GET /api/sessions differs from the database")
    return found


async def acknowledged_lost(ledger: Ledger, db_url: str) -> list[str]:
    """Acknowledged writes the database does not reflect. A create's session and a
    message must be there (with the id the client was given; a message may have been
    trimmed once its session holds `KEPT_MESSAGES`); a session's title must be
    that of its last acknowledged update or of a later one whose outcome the client
    does not know (each session has one writer, sending one write at a time)."""
    sessions_of = {w.params["id"] for w in ledger.writes if w.op == "update"}
    messages_of = {w.params["session_id"] for w in ledger.writes if w.op == "message"}
    topics = {"sessions.state"} | {f"sessions.activity:{sid}" for sid in messages_of}
    truth = (await read_truth(db_url, topics)).topics
    sessions = truth["sessions.state"]
    lost = []
    for w in ledger.writes:
        if w.outcome != "ok" or w.result is None:
            continue
        if w.op == "create" and sessions.get(w.result["id"], {}).get("title") != w.value:
            lost.append(f"create {w.value!r} acknowledged as {w.result['id']}: not in the database")
        kept = truth.get(f"sessions.activity:{w.params.get('session_id')}", {})
        if w.op == "message" and len(kept) < KEPT_MESSAGES and w.result["id"] not in kept:
            lost.append(f"message {w.value!r} acknowledged as {w.result['id']}: not in the database")
    for sid in sessions_of:
        updates = [w for w in ledger.writes if w.op == "update" and w.params["id"] == sid]
        title = sessions.get(sid, {}).get("title")
        applied = max((i for i, w in enumerate(updates) if w.value == title), default=-1)
        later_acked = [w.value for w in updates[applied + 1 :] if w.outcome == "ok"]
        if later_acked:
            lost.append(f"session {sid} holds {title!r}, but {later_acked[-1]!r} was acknowledged after it")
    return lost
