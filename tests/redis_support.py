"""Redis for the tests: the shared server on 127.0.0.1:6379 when it answers (each test
gets its own key prefix, so parallel runs never collide), or a throwaway
`redis-server` on a free port; and always a throwaway one for tests that stop it."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support import free_port


def _shared() -> tuple[str, int]:
    """The Redis the tests share: REALTIME_TEST_REDIS (host:port), or 127.0.0.1:6379."""
    host, _, port = os.environ.get("REALTIME_TEST_REDIS", "127.0.0.1:6379").rpartition(":")
    return host, int(port)


SHARED = _shared()


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class RedisServer:
    """A redis-server process of the test's own, on a port that stays its own."""

    port: int
    directory: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail(
                "redis-server is not installed: apt-get install redis-server (scripts/setup-services)"
            )
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.directory,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(200):
            if _answers("127.0.0.1", self.port):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.02)  # another process starting: its port is all there is to watch
        pytest.fail(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@contextlib.contextmanager
def throwaway_redis() -> Iterator[RedisServer]:
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(free_port(), directory)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def redis_base_url() -> Iterator[str]:
    if _answers(*SHARED) and not os.environ.get("REALTIME_TEST_OWN_REDIS"):
        yield f"redis://{SHARED[0]}:{SHARED[1]}/0"
        return
    with throwaway_redis() as server:
        yield server.url


@pytest.fixture
def redis_prefix() -> str:
    """A key and channel prefix of this test's own."""
    return f"rt-test:{secrets.token_hex(6)}:"


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A redis-server only this test uses, to stop and start."""
    with throwaway_redis() as server:
        yield server
