"""Case 5: a node's publish lands late - after a newer change of the same topic was
committed and published by another node. Clients would apply the older event last and
keep it: a divergence no seq check sees (the seqs are contiguous).

(a) `delay`: 3 s of latency between node X and Redis. X commits a change of session S
    and publishes; the publish times out after 2 s (X answers 503, X's unit lets the
    topic's lock go), node Y then changes S and publishes; X's publish, already on the
    wire, reaches Redis a second later.
(b) `commit-cut`: the same delay, and X's PostgreSQL connection is cut right after the
    reply to X's COMMIT (the proxy cuts after the commit's reply: the server's side is
    closed, so PostgreSQL releases X's advisory locks; X's side is left half-open). Y
    changes S at once; X's publish lands 3 s later.

X's warm-up write just before (a connection of X's Redis pool idle for a second is
PINGed before use, which the delay would time out) makes X's publish go out on the wire.
Done when: after healing, every subscriber's state equals the database's (0 lasting
divergence), with the window verifiably hit (X's publish reached Redis after Y's write
was acknowledged)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import asyncpg
import pytest

from tests.chaos.deployment import Deployment
from tests.chaos.followers import all_live
from tests.chaos.nodes import Node
from tests.chaos.profile import CONVERGE_S, PROFILE
from tests.chaos.results import Report
from tests.chaos.truth import converge
from tests.chaos.writers import CLIENT_TIMEOUT_S

pytestmark = pytest.mark.timeout(PROFILE.timeout_s)

LATENCY_S = 3.0
COMMIT_S = 5.0


async def _patch(http: aiohttp.ClientSession, node: Node, session_id: str, title: str) -> tuple[int, float]:
    """(status, seconds); status 0: no answer within the client's timeout."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(CLIENT_TIMEOUT_S):
            async with http.patch(f"{node.url}/api/sessions/{session_id}", json={"title": title}) as resp:
                await resp.read()
                return resp.status, time.monotonic() - started
    except (aiohttp.ClientError, OSError, TimeoutError):
        return 0, time.monotonic() - started


async def _committed(db_url: str, session_id: str, title: str) -> bool:
    """Until the database holds `title` for the session (polled), or COMMIT_S."""
    conn = await asyncpg.connect(db_url)
    try:
        async with asyncio.timeout(COMMIT_S):
            while await conn.fetchval("SELECT title FROM sessions WHERE id = $1", session_id) != title:  # noqa: ASYNC110
                await asyncio.sleep(0.01)  # another process's commit: no event to await
        return True
    except TimeoutError:
        return False
    finally:
        await conn.close()


async def _landed(times: list[float], *, after: float, timeout: float) -> bool:
    """Until the proxy forwarded a publish to Redis after `after` (polled)."""
    try:
        async with asyncio.timeout(timeout):
            while not any(t > after for t in times):  # noqa: ASYNC110 - written by the proxy
                await asyncio.sleep(0.02)
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize("variant", ["delay", "commit-cut"])
async def test_a_late_publish_never_leaves_clients_with_an_older_state(
    deployment: Deployment, variant: str
) -> None:
    d = deployment
    report = Report(f"5{'a' if variant == 'delay' else 'b'}", f"late publish ({variant})")
    x, y = await d.add_node("x"), await d.add_node("y")
    assert x.redis_proxy is not None and x.pg_proxy is not None
    target, warm = await d.create_sessions(y, ["target", "warm-up"])
    followers = [
        d.follow(node, ["sessions.state"], name=f"{node.name}{i}", address=i)
        for i in range(2)
        for node in (x, y)
    ]
    await all_live(followers, timeout=20)
    http_x, http_y = d.http(30), d.http(31)
    publishes = x.redis_proxy.watch(b"EVALSHA")
    outcomes: dict[str, Any] = {"x": [], "y": [], "committed": 0, "hit": 0}
    for trial in range(PROFILE.trials):
        status, _ = await _patch(http_x, x, warm["id"], f"warm {trial}")  # X's pool connection: fresh
        assert status == 200, status
        if variant == "commit-cut":
            cut = x.pg_proxy.cut_after(b"COMMIT", close_upstream=True)
        x.redis_proxy.delay(LATENCY_S)
        late = f"x late {trial}"
        x_write = asyncio.create_task(_patch(http_x, x, target["id"], late))
        committed = await _committed(d.db_url, target["id"], late)
        outcomes["committed"] += committed
        if variant == "commit-cut":
            await asyncio.wait_for(cut.wait(), COMMIT_S)
        newer = await _patch(http_y, y, target["id"], f"y newer {trial}")
        acknowledged = time.monotonic()
        outcomes["y"].append(newer[0])
        outcomes["hit"] += await _landed(publishes, after=acknowledged, timeout=LATENCY_S + 2)
        status, seconds = await x_write
        outcomes["x"].append(f"{status} in {seconds:.1f} s")
        x.redis_proxy.heal(resume=True)
        x.pg_proxy.heal(resume=True)

    result = await converge(followers, db_url=d.db_url, redis_url=d.redis.url, timeout=CONVERGE_S)
    gaps = [f"{f.name}: {v}" for f in followers for v in f.violations]
    report.note(
        trials=PROFILE.trials,
        x_committed=outcomes["committed"],
        window_hit=outcomes["hit"],
        x_answers=outcomes["x"],
        y_answers=outcomes["y"],
        closes=sum(len(f.closes) for f in followers),
        silent_gaps=len(gaps),
        mismatches=len(result.mismatches),
    )
    report.expect(outcomes["committed"] == PROFILE.trials, "X's change committed in every trial")
    report.expect(
        outcomes["hit"] == PROFILE.trials,
        f"the window is hit: X's publish reaches Redis after Y's write ({outcomes['hit']}/{PROFILE.trials})",
    )
    report.expect(outcomes["y"] == [200] * PROFILE.trials, f"Y's newer writes succeed: {outcomes['y']}")
    report.expect(not gaps, f"no silent gap: {gaps[:3]}")
    report.expect(result.ok, f"0 lasting divergence: {result.mismatches[:4]}")
    report.finish()
