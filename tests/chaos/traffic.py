"""The load most cases run under, and the end-state criteria they share.

`start_traffic`: three sessions; followers on every node, subscribed to
`sessions.state` and the third session's activity; three writers - HTTP updates of the
first session, socket updates of the second, HTTP messages to the third - each sending
to the nodes in turn (one writer per session, one write at a time, so the end state
says which acknowledged writes it must show).

`check_end_state`: stops the writers, then records and expects: no silent gap on any
follower, every follower converged on the database, every node reading it, no
acknowledged write lost."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.chaos.deployment import Deployment
from tests.chaos.followers import Follower, all_live
from tests.chaos.nodes import Node
from tests.chaos.profile import CONVERGE_S
from tests.chaos.results import Report
from tests.chaos.truth import acknowledged_lost, converge, node_reads
from tests.chaos.writers import Ledger, Write, Writer, fresh_key


@dataclass
class Traffic:
    followers: list[Follower]
    writers: list[Writer]
    ledger: Ledger
    sessions: list[Any]

    def on(self, node: Node) -> list[Follower]:
        return [f for f in self.followers if f.url == node.ws_url]


async def start_traffic(
    d: Deployment,
    nodes: list[Node],
    *,
    followers_per_node: int | list[int] = 2,
    rate: float = 5.0,
    retry: bool = False,
    keys: bool = False,
) -> Traffic:
    """`followers_per_node`: one count, or one per node. `retry`: writers resend unknown
    outcomes; `keys`: under idempotency keys."""
    counts = followers_per_node if isinstance(followers_per_node, list) else [followers_per_node] * len(nodes)
    sessions = await d.create_sessions(nodes[0], ["http updates", "socket updates", "messages"])
    updated_http, updated_socket, messaged = (s["id"] for s in sessions)
    topics = ["sessions.state", f"sessions.activity:{messaged}"]
    followers = [
        d.follow(node, topics, name=f"{node.name}{i}", address=10 * n + i)
        for n, node in enumerate(nodes)
        for i in range(counts[n])
    ]
    await all_live(followers, timeout=20)
    ledger = Ledger()

    def key() -> str | None:
        return fresh_key() if keys else None

    specs = [
        (
            "http updates",
            "http",
            lambda n: Write("update", "http", {"id": updated_http, "title": f"h{n}"}, key()),
        ),
        (
            "socket updates",
            "socket",
            lambda n: Write("update", "socket", {"id": updated_socket, "title": f"s{n}"}, key()),
        ),
        (
            "messages",
            "http",
            lambda n: Write("message", "http", {"session_id": messaged, "text": f"m{n}"}, key()),
        ),
    ]
    writers = []
    for i, (name, via, make) in enumerate(specs):
        order = nodes[i % len(nodes) :] + nodes[: i % len(nodes)]
        writer = Writer(name, order, via, d.http(200 + i), make, ledger, rate=rate, retry=retry)
        writers.append(writer)
        d.writers.append(writer)
        writer.start()
    return Traffic(followers, writers, ledger, sessions)


async def check_end_state(
    report: Report, d: Deployment, traffic: Traffic, *, stop_timeout: float = 60
) -> None:
    for writer in traffic.writers:
        await writer.stop(timeout=stop_timeout)
    followers = traffic.followers
    result = await converge(followers, db_url=d.db_url, redis_url=d.redis.url, timeout=CONVERGE_S)
    reads = await node_reads(d.nodes, d.db_url)
    lost = await acknowledged_lost(traffic.ledger, d.db_url)
    gaps = [f"{f.name}: {v}" for f in followers for v in f.violations]
    ledger = traffic.ledger
    report.note(
        writes_ok=ledger.count("ok"),
        writes_failed=ledger.count("failed"),
        writes_unknown=ledger.count("unknown"),
        closes=sum(len(f.closes) for f in followers),
        silent_gaps=len(gaps),
        mismatches=len(result.mismatches),
        acked_lost=len(lost),
    )
    report.expect(not gaps, f"no silent gap: {gaps[:3]}")
    report.expect(result.ok, f"every subscriber converges on the database: {result.mismatches[:3]}")
    report.expect(not reads, f"every node reads the database: {reads}")
    report.expect(not lost, f"no acknowledged write lost: {lost[:3]}")
