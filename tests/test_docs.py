"""The embedding example in docs/embedding.md runs as written."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

from tests.support import WsClient

DOC = Path(__file__).parent.parent / "docs" / "embedding.md"


def _example(monkeypatch) -> dict:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S).group(1)
    module = types.ModuleType("docs_embedding_example")
    monkeypatch.setitem(sys.modules, module.__name__, module)  # pydantic resolves names there
    exec(compile(code, str(DOC), "exec"), module.__dict__)
    return module.__dict__


async def test_embedding_example_serves_snapshots_and_events(aiohttp_client, monkeypatch):
    ns = _example(monkeypatch)
    ns["orders"]["acme"] = {"o1": ns["Order"](id="o1", status="open")}
    client = await aiohttp_client(ns["app"])
    ws = await WsClient.connect(client)
    await ws.subscribe("orders:acme", "orders:nobody")
    snapshot, error = await ws.barrier()
    assert snapshot["payload"] == {"orders": [{"id": "o1", "status": "open"}]}
    assert (error["code"], error["topic"]) == ("unknown_topic", "orders:nobody")
    await ns["fill"]("acme", "o1")
    [event] = await ws.barrier()
    assert event == {
        "type": "event",
        "topic": "orders:acme",
        "seq": 1,
        "payload": {"op": "upsert", "order": {"id": "o1", "status": "filled"}},
    }
    assert ws.hello["max_queue_bytes"] == 512 * 1024
