"""Typed topic handles are checked statically: mypy rejects a payload of the wrong topic.

Runs mypy (strict, the project's configuration) on a small publisher; the same code
with the right payload type passes, so the failure is the handle's doing.
"""

from __future__ import annotations

from pathlib import Path

from mypy import api

ROOT = Path(__file__).resolve().parent.parent

PUBLISHER = """
from datetime import UTC, datetime

from aiohttp_realtime import Hub
from backend.models import Message, MessageAppend, SessionRemove
from backend.topics import ACTIVITY, SESSIONS


async def publish(hub: Hub) -> None:
    message = Message(id="m", session_id="s", role="user", text="hi", streaming=False,
                      created_at=datetime.now(UTC))
    await hub.publish(ACTIVITY.at(session_id="s"), MessageAppend(op="append", message=message))
    await hub.publish(SESSIONS, SessionRemove(op="remove", id="s"))
    {extra}
"""


def _mypy(tmp_path: Path, extra: str) -> tuple[str, int]:
    module = tmp_path / "publisher.py"
    module.write_text(PUBLISHER.format(extra=extra))
    out, err, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(ROOT / ".mypy_cache"), str(module)]
    )
    return out + err, status


def test_the_right_payload_type_checks(tmp_path: Path) -> None:
    out, status = _mypy(tmp_path, "")
    assert status == 0, out


def test_a_payload_of_another_topic_is_a_type_error(tmp_path: Path) -> None:
    out, status = _mypy(
        tmp_path, 'await hub.publish(ACTIVITY.at(session_id="s"), SessionRemove(op="remove", id="s"))'
    )
    assert status == 1
    # E is pinned by the handle (TopicRef is invariant in it), so mypy words it as an
    # unsolvable type parameter, on the offending line.
    expected = 'publisher.py:14: error: Cannot infer value of type parameter "E" of "publish" of "Publisher"'
    assert expected in out, out
