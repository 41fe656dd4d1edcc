"""Fixtures of the chaos suite: one throwaway PostgreSQL cluster per test process (the
cases freeze and restart it, so never the shared one), and per test a `Deployment` with
a throwaway Redis and a database of its own, torn down whatever the test did."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.chaos.deployment import Deployment
from tests.chaos.servers import Postgres, Redis
from tests.pg_support import new_database, own_cluster
from tests.redis_support import throwaway_redis


@pytest.fixture(scope="session")
def chaos_postgres() -> Iterator[Postgres]:
    with own_cluster() as cluster:
        yield Postgres(cluster)


@pytest.fixture
async def deployment(chaos_postgres: Postgres, tmp_path: Path) -> AsyncIterator[Deployment]:
    with throwaway_redis() as server:
        async with new_database(chaos_postgres.admin_url) as db_url:
            d = Deployment(Redis(server), chaos_postgres, db_url, tmp_path)
            try:
                yield d
            finally:
                with contextlib.suppress(OSError):
                    chaos_postgres.thaw()  # a test that failed while PostgreSQL was frozen
                await d.close()
