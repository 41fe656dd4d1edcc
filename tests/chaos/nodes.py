"""Nodes: `python -m backend --no-simulate` subprocesses sharing one Redis and one
PostgreSQL database, each through proxies of its own (tests/chaos/proxy.py), so that a
test can break one node's network without touching the others'.

A node's output goes to a log file (a pipe nobody reads would fill and stop it); the
file's tail is in the failure message when a node does not come up."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from tests.chaos.proxy import FaultProxy
from tests.support import free_port

#: Every node's key and channel prefix in the test's own Redis.
REDIS_PREFIX = "chaos:"
#: Set, the nodes import `backend` and `aiohttp_realtime` from these paths first (e.g. an
#: export of an older commit, to see the suite fail on the bugs it had); else from here.
PYTHONPATH_ENV = "CHAOS_NODE_PYTHONPATH"
START_TIMEOUT_S = 30.0


@dataclass
class Node:
    name: str
    port: int
    log: Path
    #: Between this node and Redis / PostgreSQL; None when it connects directly.
    redis_proxy: FaultProxy | None
    pg_proxy: FaultProxy | None
    argv: list[str]
    process: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/realtime"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        if os.environ.get(PYTHONPATH_ENV):
            env["PYTHONPATH"] = os.pathsep.join(
                filter(None, [os.environ[PYTHONPATH_ENV], env.get("PYTHONPATH")])
            )
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=self.log.parent,  # not the checkout: `-m` puts the cwd first on sys.path
            )
        await self.wait_serving()

    async def wait_serving(self) -> None:
        """Until GET /healthz answers (polled: another process has no event to await)."""
        async with aiohttp.ClientSession() as http:
            try:
                async with asyncio.timeout(START_TIMEOUT_S):
                    while True:
                        assert self.process is not None
                        if self.process.returncode is not None:
                            raise AssertionError(f"node {self.name} exited:\n{self.tail()}")
                        try:
                            async with http.get(f"{self.url}/healthz") as resp:
                                if resp.status == 200:
                                    return
                        except aiohttp.ClientError:
                            pass
                        await asyncio.sleep(0.1)
            except TimeoutError:
                raise AssertionError(f"node {self.name} did not serve:\n{self.tail()}") from None

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    async def kill(self) -> None:
        """kill -9 (also what the fixture does at the end)."""
        if self.process is not None and self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGCONT)  # a paused node dies as well
            self.process.kill()
            await self.process.wait()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


async def make_node(
    name: str,
    *,
    redis_port: int,
    pg_port: int,
    database: str,
    logs: Path,
    proxy_redis: bool = True,
    proxy_pg: bool = True,
) -> Node:
    """A node (not started) with its own proxies (started)."""
    redis_proxy = FaultProxy(("127.0.0.1", redis_port), name=f"{name}-redis") if proxy_redis else None
    pg_proxy = FaultProxy(("127.0.0.1", pg_port), name=f"{name}-pg") if proxy_pg else None
    for proxy in (redis_proxy, pg_proxy):
        if proxy is not None:
            await proxy.start()
    redis_at = redis_proxy.port if redis_proxy else redis_port
    pg_at = pg_proxy.port if pg_proxy else pg_port
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "backend",
        "--no-simulate",
        "--no-access-log",
        "--port",
        str(port),
        "--broker",
        f"redis://127.0.0.1:{redis_at}/0",
        "--redis-prefix",
        REDIS_PREFIX,
        "--database",
        f"postgresql://postgres@127.0.0.1:{pg_at}/{database}",
    ]
    return Node(name, port, logs / f"{name}.log", redis_proxy, pg_proxy, argv)
