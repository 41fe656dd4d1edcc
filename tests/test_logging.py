"""Structured logs: `--log-format json` writes one JSON object per line, with the
connection's id (and topic, close code) where the library's log calls pass them;
`--no-access-log` turns aiohttp's line per request off."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import pytest

from backend.__main__ import parse_args
from backend.app import Config, build_app
from backend.observability import JsonFormatter
from tests.support import WsClient, free_port, until


@contextmanager
def json_lines(logger_name: str) -> Iterator[io.StringIO]:
    """Everything `logger_name` logs at DEBUG and above, as JSON lines in a buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_has_the_fields_and_the_context_passed():
    with json_lines("test.json") as stream:
        log = logging.getLogger("test.json")
        log.info("plain %s", "text")
        extra = {"connection_id": "c1", "topic": "sessions.state", "close_code": 4008}
        log.warning('multi\nline "quoted"', extra=extra)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed", extra={"connection_id": "c2"})
    first, second, third = parsed(stream)
    assert first.keys() == {"ts", "level", "logger", "message"}
    assert first["level"] == "INFO" and first["logger"] == "test.json" and first["message"] == "plain text"
    assert first["ts"].endswith("+00:00")
    assert second["message"] == 'multi\nline "quoted"'
    assert (second["connection_id"], second["topic"], second["close_code"]) == ("c1", "sessions.state", 4008)
    assert third["connection_id"] == "c2" and "ValueError: boom" in third["exc"]


async def test_a_connection_logs_its_id_when_it_opens_and_closes(aiohttp_client):
    client = await aiohttp_client(build_app(Config(simulate=False)))
    with json_lines("aiohttp_realtime") as stream:
        ws = await WsClient.connect(client)
        assert ws.hello is not None
        await ws.close()
        conn_id = ws.hello["connection_id"]
        await until(lambda: f"connection {conn_id}: closing" in stream.getvalue())
    lines = [line for line in parsed(stream) if line.get("connection_id") == conn_id]
    assert [line["message"] for line in lines][:1] == [f"connection {conn_id}: open"]
    [closing] = [line for line in lines if "close_code" in line]
    assert closing["close_code"] == 1000 and closing["logger"] == "aiohttp_realtime.connection"


def test_log_flags_and_environment(monkeypatch):
    assert parse_args([]).log_format == "human"
    assert parse_args([]).access_log is True
    assert parse_args(["--log-format", "json", "--no-access-log"]).log_format == "json"
    assert parse_args(["--no-access-log"]).access_log is False
    monkeypatch.setenv("BACKEND_LOG_FORMAT", "json")
    monkeypatch.setenv("BACKEND_ACCESS_LOG", "false")
    config = parse_args([])
    assert (config.log_format, config.access_log) == ("json", False)
    monkeypatch.setenv("BACKEND_LOG_FORMAT", "xml")
    with pytest.raises(SystemExit):
        parse_args([])


@pytest.mark.parametrize("access_log", [True, False])
async def test_the_service_logs_json_lines(access_log):
    port = free_port()
    flags = ["--log-format", "json", *([] if access_log else ["--no-access-log"])]
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "backend", "--port", str(port), "--no-simulate", *flags),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        async with asyncio.timeout(20):
            assert (await proc.stdout.readline()).startswith(b"serving on")
        async with aiohttp.ClientSession() as session:
            assert (await session.get(f"http://127.0.0.1:{port}/healthz")).status == 200
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            stderr = (await proc.stderr.read()).decode()
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line is one object
    assert lines and all({"ts", "level", "logger", "message"} <= line.keys() for line in lines)
    assert any("authentication is OFF" in line["message"] for line in lines)
    assert any(line["logger"] == "aiohttp.access" for line in lines) is access_log
