"""One test's deployment: a throwaway Redis, a database of its own on the throwaway
PostgreSQL cluster, the nodes (each with its own proxies), and the clients the test
starts - every one of them stopped, killed or closed by `close()`, whatever happened."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from tests.chaos import addresses
from tests.chaos.followers import Follower
from tests.chaos.nodes import Node, make_node
from tests.chaos.servers import Postgres, Redis
from tests.chaos.writers import Writer


@dataclass
class Deployment:
    redis: Redis
    pg: Postgres
    #: The database's URL, direct (not through any node's proxy): the truth.
    db_url: str
    logs: Path
    nodes: list[Node] = field(default_factory=list)
    followers: list[Follower] = field(default_factory=list)
    writers: list[Writer] = field(default_factory=list)
    _sessions: list[aiohttp.ClientSession] = field(default_factory=list)
    _probe_session: aiohttp.ClientSession | None = None

    @property
    def database(self) -> str:
        return self.db_url.rsplit("/", 1)[1]

    async def add_node(self, name: str, *, proxy_redis: bool = True, proxy_pg: bool = True) -> Node:
        node = await make_node(
            name,
            redis_port=self.redis.port,
            pg_port=self.pg.port,
            database=self.database,
            logs=self.logs,
            proxy_redis=proxy_redis,
            proxy_pg=proxy_pg,
        )
        self.nodes.append(node)
        await node.start()
        return node

    def http(self, address: int = 0, *, timeout_s: float | None = None) -> aiohttp.ClientSession:
        """A client session from the `address`-th local address, closed at the end."""
        session = addresses.session(address, timeout_s=timeout_s)
        self._sessions.append(session)
        return session

    def follow(self, node: Node, topics: list[str], *, name: str, address: int = 0) -> Follower:
        follower = Follower(name, node.ws_url, topics, self.http(address))
        self.followers.append(follower)
        follower.start()
        return follower

    async def create_sessions(self, node: Node, titles: list[str], *, first_address: int = 100) -> list[Any]:
        """Sessions created over HTTP, spread over addresses (the per-address write
        limit is 20/s, 40 at once)."""
        sessions: list[Any] = []
        for start in range(0, len(titles), 40):
            http = self.http(first_address + start // 40)
            batch = titles[start : start + 40]
            sessions += await asyncio.gather(*(_create(http, node, title) for title in batch))
        return sessions

    async def readyz(self, node: Node) -> int:
        """/readyz's status; 0 if it did not answer within 2 s."""
        http = self._probe()
        try:
            async with asyncio.timeout(2):
                async with http.get(f"{node.url}/readyz") as resp:
                    return resp.status
        except (aiohttp.ClientError, OSError, TimeoutError):
            return 0

    def _probe(self) -> aiohttp.ClientSession:
        if self._probe_session is None:
            self._probe_session = aiohttp.ClientSession()
            self._sessions.append(self._probe_session)
        return self._probe_session

    async def close(self) -> None:
        for writer in self.writers:
            with contextlib.suppress(Exception):
                await writer.stop(timeout=1)
        for follower in self.followers:
            with contextlib.suppress(Exception):
                await follower.stop()
        for node in self.nodes:
            await node.kill()
        for node in self.nodes:
            for proxy in (node.redis_proxy, node.pg_proxy):
                if proxy is not None:
                    await proxy.close()
        for session in self._sessions:
            await session.close()


async def _create(http: aiohttp.ClientSession, node: Node, title: str) -> Any:
    async with http.post(f"{node.url}/api/sessions", json={"title": title}) as resp:
        assert resp.status == 201, (resp.status, await resp.text())
        return await resp.json()
