"""The servers a chaos test breaks: a throwaway redis-server and PostgreSQL cluster of its
own (never the shared ones on 6379 and 5432, which other tests use), with the faults a
test applies to them: kill -9 and start again, SIGSTOP and SIGCONT, restart.

Built on tests/redis_support.py and tests/pg_support.py; this module only adds the
faults those helpers do not have, run off the event loop where they block (the proxies
and clients of the test share that loop)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

from tests.pg_support import Cluster
from tests.redis_support import SHARED as SHARED_REDIS
from tests.redis_support import RedisServer

SHARED_PG_PORT = 5432


class Redis:
    """A throwaway redis-server (`tests.redis_support.RedisServer`) and its faults."""

    def __init__(self, server: RedisServer) -> None:
        assert server.port != SHARED_REDIS[1], "never break the shared Redis"
        self.server = server

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def pid(self) -> int:
        assert self.server.process is not None, "redis-server is not running"
        return self.server.process.pid

    async def kill(self) -> None:
        """kill -9 (its data goes with it: persistence is off)."""
        await asyncio.to_thread(self.server.stop)

    async def start(self) -> None:
        """Start again on the same port."""
        await asyncio.to_thread(self.server.start)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)


class Postgres:
    """A throwaway PostgreSQL cluster (`tests.pg_support.Cluster`) and its faults."""

    def __init__(self, cluster: Cluster) -> None:
        assert cluster.port != SHARED_PG_PORT, "never break the shared PostgreSQL"
        self.cluster = cluster

    @property
    def port(self) -> int:
        return self.cluster.port

    @property
    def admin_url(self) -> str:
        return self.cluster.url

    def freeze(self) -> None:
        """SIGSTOP every process of the cluster: connections and connects hang."""
        self.cluster.freeze()

    def thaw(self) -> None:
        """SIGCONT every process of it; one that exits meanwhile is no error (unlike
        `Cluster.thaw`, which stops at it and leaves the rest stopped)."""
        for pid in reversed(self.cluster.pids()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    @contextlib.contextmanager
    def thawed_on_exit(self) -> Iterator[None]:
        """Whatever happens in the block, the cluster runs again after it."""
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                self.thaw()

    async def restart(self, how: str) -> None:
        """`fast`: pg_ctl stop -m fast (clients are told), then start. `kill`: kill -9
        of the postmaster (its backends exit when they notice), then start."""
        if how == "fast":
            await asyncio.to_thread(self.cluster.stop, "fast")
        elif how == "kill":
            pids = self.cluster.pids()
            os.kill(pids[0], signal.SIGKILL)
            await _exited(pids, timeout=30)
        else:
            raise ValueError(how)
        await asyncio.to_thread(self.cluster.start)


async def _exited(pids: list[int], *, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while any(_alive(pid) for pid in pids):  # noqa: ASYNC110
            await asyncio.sleep(0.05)  # no event for another process's exit: poll /proc


def _alive(pid: int) -> bool:
    """Still in the process table, zombies included: PostgreSQL refuses to start while
    its lock file names a pid that exists. /proc never blocks."""
    return Path(f"/proc/{pid}").exists()
