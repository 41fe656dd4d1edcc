"""`python -m backend --workers 2`, SIGHUP to the parent: a rolling restart that drops
no other worker's clients (backend/workers.py).

Each client is told apart by the worker that holds its connection: the server end of
its TCP connection is a socket in exactly one worker's file table (/proc). The demo
does not name its process anywhere a client sees, and needs not to for this."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from aiohttp_realtime import RealtimeSettings
from tests.pg_support import pg_admin_url, pg_url  # noqa: F401
from tests.redis_support import redis_base_url, redis_prefix  # noqa: F401
from tests.test_workers import _alive, _worker_pids

WORKERS = 2
#: Clients on each worker before the restart (connects go on until each has as many).
PER_WORKER = 3
SETTINGS = RealtimeSettings()  # the workers run with the defaults
#: What a draining worker's close reason says (docs/protocol.md).
HINT = f"reconnect_within_ms={round(SETTINGS.reconnect_window_s * 1000)}"
#: The pace of the background writer and of the connect probes (a pace, not a wait).
WRITE_EVERY_S = 0.05
PROBE_EVERY_S = 0.05


@dataclass
class Parent:
    """The workers' parent, its port, and its stderr (its own lines and its workers'
    logs), read to the end so that no worker blocks on a full pipe."""

    process: asyncio.subprocess.Process
    port: int
    stderr: list[str] = field(default_factory=list)
    #: Its lines "restart requested: ..." and "restart done: ..." (backend/workers.py).
    restarting: asyncio.Event = field(default_factory=asyncio.Event)
    restarted: asyncio.Event = field(default_factory=asyncio.Event)
    reader: asyncio.Task[None] | None = None
    #: Every worker pid the test looked up (killed at the end if still there).
    seen: list[int] = field(default_factory=list)

    def workers(self) -> list[int]:
        pids = _worker_pids(self.process.pid)
        self.seen += pids
        return pids

    async def read_stderr(self) -> None:
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            text = line.decode(errors="replace").rstrip()
            self.stderr.append(text)
            if text.startswith("restart requested:"):
                self.restarting.set()
            if text.startswith("restart done:"):
                self.restarted.set()

    async def until_restarted(self) -> None:
        """Until it says its restart is done; AssertionError if it exits instead."""
        restarted = asyncio.create_task(self.restarted.wait())
        # The end of its stdout, which no worker holds (`wait()` also waits for stderr's,
        # which workers orphaned by its death would hold open).
        assert self.process.stdout is not None
        exited = asyncio.create_task(self.process.stdout.read())
        try:
            await asyncio.wait({restarted, exited}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            restarted.cancel()
            exited.cancel()
        assert self.restarted.is_set(), f"the parent exited:\n{self.tail()}"

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.stderr[-lines:])


@contextlib.asynccontextmanager
async def workers(redis_url: str, prefix: str, database: str) -> AsyncIterator[Parent]:
    """`python -m backend --workers 2` on a free port, as an operator runs it."""
    command = [
        *(sys.executable, "-m", "backend", "--workers", str(WORKERS), "--port", "0"),
        *("--no-simulate", "--no-access-log", "--broker", redis_url, "--redis-prefix", prefix),
        *("--database", database),
    ]
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    parent = Parent(proc, 0)
    parent.reader = asyncio.create_task(parent.read_stderr())
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(60):
            line = (await proc.stdout.readline()).decode()
        assert line.startswith("serving on http://127.0.0.1:"), f"{line}\n{parent.tail()}"
        parent.port = int(line.split(":")[2].split("/")[0])
        yield parent
    finally:
        # Its workers too: a parent that died (SIGHUP's default action) leaves them
        # serving. Only processes whose command line has this test's Redis prefix.
        pids = set(parent.seen)
        with contextlib.suppress(OSError):
            pids.update(_worker_pids(proc.pid))
        for pid in pids:
            if _runs_with(pid, prefix):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await _finish([parent.reader], timeout=5)


def _runs_with(pid: int, argument: str) -> bool:
    """Whether process `pid` exists and has `argument` on its command line (/proc: never
    blocks)."""
    try:
        return argument.encode() in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False


async def _finish(tasks: list[asyncio.Task[None]], *, timeout: float) -> None:
    """Wait for `tasks` (their exceptions raised), cancelling what is left after
    `timeout`: a test that failed half-way must not hang on its clients."""
    _done, pending = await asyncio.wait(tasks, timeout=timeout)
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=bool(pending))


def _holder(client_port: int, server_port: int, pids: list[int]) -> int:
    """The worker whose file table holds the server end of the connection from
    `client_port` to `server_port`."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for row in Path(table).read_text().splitlines()[1:]:
                cols = row.split()
                local, remote = int(cols[1].rsplit(":", 1)[1], 16), int(cols[2].rsplit(":", 1)[1], 16)
                if (local, remote) == (server_port, client_port):
                    inodes.add(f"socket:[{cols[9]}]")
    holders = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    holders.add(pid)
    assert len(holders) == 1, (client_port, inodes, holders)
    return holders.pop()


@dataclass
class Client:
    """A subscriber of `sessions.state`: every event's title and seq, and its close."""

    ws: aiohttp.ClientWebSocketResponse
    worker: int
    seq: int
    events: list[tuple[float, str, int]] = field(default_factory=list)  # (when, title, seq)
    close: tuple[float, int | None, str] | None = None  # (when, code, reason)
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        try:
            while True:
                msg = await self.ws.receive()
                if msg.type is aiohttp.WSMsgType.TEXT:
                    frame = json.loads(msg.data)
                    if frame["type"] == "event" and frame["payload"]["op"] == "upsert":
                        title = frame["payload"]["session"]["title"]
                        self.events.append((time.monotonic(), title, frame["seq"]))
                    continue
                reason = msg.extra if msg.type is aiohttp.WSMsgType.CLOSE else ""
                self.close = (time.monotonic(), self.ws.close_code, reason or "")
                return
        finally:
            self.closed.set()

    @property
    def closed_at(self) -> float:
        assert self.close is not None, "still open"
        return self.close[0]

    def gaps(self) -> list[int]:
        seqs = [self.seq] + [seq for _, _, seq in self.events]
        return [b for a, b in itertools.pairwise(seqs) if b != a + 1]


async def _subscribe(http: aiohttp.ClientSession, port: int, pids: list[int]) -> Client:
    ws = await http.ws_connect(f"http://127.0.0.1:{port}/api/realtime")
    hello = await ws.receive_json(timeout=10)
    assert hello["type"] == "hello", hello
    await ws.send_json({"type": "subscribe", "topics": ["sessions.state"]})
    snapshot = await ws.receive_json(timeout=10)
    assert snapshot["type"] == "snapshot", snapshot
    client_port = ws.get_extra_info("sockname")[1]
    return Client(ws, _holder(client_port, port, pids), snapshot["seq"])


@dataclass
class Load:
    """Writes (POST /api/sessions, resent with their key until acknowledged) and
    connect probes (a new client that must get `hello`), paced, until stopped."""

    http: aiohttp.ClientSession
    port: int
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    #: (started, title) of every acknowledged write, started = its first attempt.
    acked: list[tuple[float, str]] = field(default_factory=list)
    #: (started, outcome) of every probe: "hello", or what went wrong.
    probes: list[tuple[float, str]] = field(default_factory=list)

    async def _pace(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.stop.wait()

    async def write(self) -> None:
        for n in itertools.count():
            if self.stop.is_set():
                return
            title, key, started = f"w{n}", str(uuid.uuid4()), time.monotonic()
            while True:
                try:
                    async with self.http.post(
                        f"http://127.0.0.1:{self.port}/api/sessions",
                        json={"title": title},
                        headers={"Idempotency-Key": key},
                    ) as resp:
                        if resp.status == 201:
                            self.acked.append((started, title))
                            break
                        assert resp.status in (429, 503), (resp.status, await resp.text())
                except (aiohttp.ClientError, OSError):
                    pass  # a connection the drain closed: resend with the same key
                await asyncio.sleep(0.05)  # backoff before the resend
            await self._pace(WRITE_EVERY_S)

    async def probe(self) -> None:
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                async with asyncio.timeout(5):
                    ws = await self.http.ws_connect(f"http://127.0.0.1:{self.port}/api/realtime")
                    try:
                        frame = await ws.receive_json()
                        outcome = "hello" if frame.get("type") == "hello" else repr(frame)
                    finally:
                        await ws.close()
            except (aiohttp.ClientError, OSError, TimeoutError, TypeError) as exc:
                outcome = repr(exc)
            self.probes.append((started, outcome))
            await self._pace(PROBE_EVERY_S)


async def test_sighup_restarts_the_workers_one_at_a_time_keeping_the_others_clients(
    redis_base_url,  # noqa: F811
    redis_prefix,  # noqa: F811
    pg_url,  # noqa: F811
):
    async with (
        workers(redis_base_url, redis_prefix, pg_url) as parent,
        aiohttp.ClientSession() as http,
    ):
        old = parent.workers()
        assert len(old) == WORKERS
        clients: list[Client] = []
        for _ in range(200):  # the kernel picks the worker of each connect
            if all(sum(c.worker == pid for c in clients) >= PER_WORKER for pid in old):
                break
            clients.append(await _subscribe(http, parent.port, old))
        by_worker = {pid: [c for c in clients if c.worker == pid] for pid in old}
        assert all(len(group) >= PER_WORKER for group in by_worker.values()), {
            pid: len(g) for pid, g in by_worker.items()
        }
        readers = [asyncio.create_task(c.read()) for c in clients]
        load = Load(http, parent.port)
        tasks = [asyncio.create_task(load.write()), asyncio.create_task(load.probe())]
        try:
            try:
                signalled = time.monotonic()
                parent.process.send_signal(signal.SIGHUP)
                async with asyncio.timeout(60):
                    await parent.until_restarted()
                    await asyncio.gather(*(c.closed.wait() for c in clients))
                done = time.monotonic()
                await load._pace(0.3)  # a few more writes and probes on the new workers
            finally:
                load.stop.set()
                await _finish(tasks, timeout=10)
                await _finish(readers, timeout=5)
        except (AssertionError, TimeoutError) as exc:  # say what the server logged
            raise AssertionError(f"{exc!r}\nparent's stderr:\n{parent.tail()}") from exc
        failure = f"parent's stderr:\n{parent.tail()}"

        # The parent is the same process and still serves; every worker is new.
        assert parent.process.returncode is None, failure
        new = parent.workers()
        assert len(new) == WORKERS and not set(new) & set(old), (old, new)
        assert not _alive(old), failure

        # Every client of the old workers was closed by its drain: 1012 and the window.
        for c in clients:
            assert c.close is not None and c.close[1] == 1012, c.close
            assert HINT in c.close[2], c.close
            assert not c.gaps(), f"worker {c.worker}: seqs skip to {c.gaps()}"
        # One worker at a time: the first one's clients were all closed before any
        # client of the other; those stayed open meanwhile and received events
        # published after the first worker had closed all of its clients.
        first, second = sorted(old, key=lambda pid: min(c.closed_at for c in by_worker[pid]))
        first_done = max(c.closed_at for c in by_worker[first])
        assert all(c.closed_at > first_done for c in by_worker[second]), failure
        later = {title for started, title in load.acked if started > first_done}
        for c in by_worker[second]:
            seen_later = {title for _, title, _ in c.events} & later
            assert seen_later, f"a client of {second} got no event after {first} drained"

        # New connections were served throughout: every probe got hello, and probes
        # ran while each worker was being replaced.
        during = [(t, outcome) for t, outcome in load.probes if signalled <= t <= done]
        assert [o for _, o in during if o != "hello"] == [], failure
        second_start = min(c.closed_at for c in by_worker[second])
        assert any(first_done < t < second_start for t, _ in during), load.probes
        assert any(t > second_start for t, _ in during), load.probes

        # Every acknowledged write is there, read from a new worker.
        async with http.get(f"http://127.0.0.1:{parent.port}/api/sessions") as resp:
            titles = {s["title"] for s in await resp.json()}
        assert {title for _, title in load.acked} <= titles
        assert len(load.acked) > 10

        parent.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await parent.process.wait() == 0
        assert not _alive(new)


async def test_a_worker_that_dies_during_a_restart_still_stops_the_set(
    redis_base_url,  # noqa: F811
    redis_prefix,  # noqa: F811
    pg_url,  # noqa: F811
):
    """Only the exits the parent asked for are restarted: a worker killed while the
    restart waits for its replacement stops the set, as at any other time."""
    async with workers(redis_base_url, redis_prefix, pg_url) as parent:
        old = parent.workers()
        parent.process.send_signal(signal.SIGHUP)
        async with asyncio.timeout(10):
            await parent.restarting.wait()  # printed as it starts the first replacement
        os.kill(old[-1], signal.SIGKILL)
        async with asyncio.timeout(30):
            assert await parent.process.wait() == 1, parent.tail()
            assert parent.reader is not None
            await parent.reader
        assert not _alive(old)
        assert any("a worker exited: stopping the others" in line for line in parent.stderr), parent.tail()
