"""The chaos suite: the faults a deployment of several nodes meets, reproduced against
real processes - `python -m backend` nodes, a redis-server and a PostgreSQL cluster of
the suite's own, proxies between them - and the promise checked: every subscriber gets
a topic's snapshot, then every event with contiguous seqs, or its connection is closed
(it resyncs), never a silent gap; and every node's clients converge on the database.

Cases (one test file each; the criteria are in each file's docstring):
1. test_subscribe_race: racing unsubscribe/subscribe on one node, never deaf.
2. test_redis_half_open: a half-open cut of one node's Redis connections.
3. test_postgres_stall: PostgreSQL SIGSTOPped, and restarted.
4. test_redis_restart_retries: Redis restarts under clients resending with idempotency keys.
5. test_late_publish: a publish that lands after a newer one (Redis latency; a
   PostgreSQL connection cut between commit and publish).
6. test_postgres_frozen: PostgreSQL frozen, whole or one node's connections.
7. test_subscribe_burst: 2,000 subscribes at 2,000/s.

The harness, one concept per module: `proxy` (the fault proxy), `servers` (Redis and
PostgreSQL faults), `nodes` (node processes), `deployment` (a test's processes and
clients, all torn down), `addresses` (local source addresses), `sockets` (a raw
realtime WebSocket), `followers` (subscribers that check seqs and resync), `writers`
(writes and their outcomes), `pacer` (requests at a steady pace, timed), `readiness`
(/readyz over time), `traffic` (the common load and end-state criteria), `truth` (the
database's state and convergence), `results` (numbers and criteria per case),
`profile` (short and long form, and the stated bounds).

Short form: collected by `./scripts/test` like any test. Long form: `scripts/chaos
--long` (or `python -m tests.chaos --long`), which prints a table of the numbers.
"""
