"""schemas/asyncapi.json: the AsyncAPI project's own parser accepts it, and it covers the contract.

The parser (`@asyncapi/parser`, root package-lock.json) runs in Node through
`tests/asyncapi/validate.mjs`; any diagnostic of severity error fails. The coverage
is asserted here against the models: every registered topic pattern, every frame
type of each direction, every error code and close code.
"""

from __future__ import annotations

import json
import subprocess
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aiohttp_realtime import CloseCode, ErrorCode
from aiohttp_realtime.closecodes import CLOSE_CODE_DOCS
from aiohttp_realtime.errors import ERROR_CODE_DOCS
from aiohttp_realtime.protocol import ClientMessage, ServerMessage
from aiohttp_realtime.typegen import load_methods, load_topics
from aiohttp_realtime.typegen.asyncapi import asyncapi

ROOT = Path(__file__).resolve().parent.parent
DOCUMENT = ROOT / "schemas" / "asyncapi.json"
VALIDATE = ROOT / "tests" / "asyncapi" / "validate.mjs"
TOPICS = load_topics("backend.topics:TOPICS")
METHODS = load_methods("backend.methods:METHODS")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DOCUMENT.read_text())
    return loaded


def _frame_types(union: Any) -> list[str]:
    members = typing.get_args(typing.get_args(union)[0])
    return [typing.get_args(m.model_fields["type"].annotation)[0] for m in members]


def _parse(path: Path) -> tuple[int, list[dict[str, Any]]]:
    done = subprocess.run(["node", str(VALIDATE), str(path)], capture_output=True, text=True, cwd=ROOT)
    return done.returncode, [json.loads(line) for line in done.stdout.splitlines()]


def _messages(doc: dict[str, Any], operation: dict[str, Any]) -> list[dict[str, Any]]:
    """An operation's messages, resolved through its channel's (`#/channels/C/messages/M`)."""
    resolved = []
    for ref in operation["messages"]:
        _, _, channel, _, key = ref["$ref"].split("/")
        message = doc["channels"][channel]["messages"][key]
        if "$ref" in message:
            message = doc["components"]["messages"][message["$ref"].rsplit("/", 1)[1]]
        resolved.append(message)
    return resolved


def test_the_document_is_current(doc: dict[str, Any]) -> None:
    assert doc == asyncapi(TOPICS, METHODS), "schemas/asyncapi.json is stale: run ./scripts/generate-types"


def test_the_asyncapi_parser_accepts_it_without_errors() -> None:
    status, diagnostics = _parse(DOCUMENT)
    errors = [d for d in diagnostics if d["severity"] == 0]
    assert (status, errors) == (0, []), diagnostics
    assert diagnostics, "the parser printed nothing: is it the parser that ran?"


def _drop_a_parameter(doc: dict[str, Any]) -> None:
    doc["channels"]["SessionsActivity"]["parameters"] = {}  # (absent passes the parser)


def _dangle_a_reference(doc: dict[str, Any]) -> None:
    doc["operations"]["ping"]["messages"] = [{"$ref": "#/channels/connection/messages/nope"}]


@pytest.mark.parametrize(
    ("break_it", "code"),
    [(_drop_a_parameter, "asyncapi3-channel-parameters"), (_dangle_a_reference, "invalid-ref")],
)
def test_the_parser_check_bites(
    doc: dict[str, Any], tmp_path: Path, break_it: Callable[[dict[str, Any]], None], code: str
) -> None:
    broken = json.loads(json.dumps(doc))
    break_it(broken)
    (tmp_path / "asyncapi.json").write_text(json.dumps(broken))
    status, diagnostics = _parse(tmp_path / "asyncapi.json")
    assert status == 1
    assert code in {d["code"] for d in diagnostics if d["severity"] == 0}


def test_every_topic_pattern_is_a_channel_with_its_parameters(doc: dict[str, Any]) -> None:
    channels = {c["address"]: c for c in doc["channels"].values()}
    for topic in TOPICS:
        channel = channels[topic.pattern]
        assert sorted(channel.get("parameters", {})) == sorted(topic.params)
        assert sorted(channel["messages"]) == ["event", "snapshot"]
    assert channels["sessions.activity:{session_id}"]["parameters"]["session_id"]["description"]
    assert len(channels) == len(TOPICS) + 1  # and the connection's (address null)


def test_every_frame_type_is_sent_or_received(doc: dict[str, Any]) -> None:
    by_action: dict[str, set[str]] = {"send": set(), "receive": set()}
    for operation in doc["operations"].values():
        by_action[operation["action"]] |= {m["name"] for m in _messages(doc, operation)}
    assert by_action["send"] == set(_frame_types(ClientMessage))
    assert by_action["receive"] == set(_frame_types(ServerMessage))
    for topic in TOPICS:  # each topic's snapshot and event are received on its channel
        received = {
            m["name"]
            for op in doc["operations"].values()
            if doc["channels"][op["channel"]["$ref"].rsplit("/", 1)[1]]["address"] == topic.pattern
            for m in _messages(doc, op)
        }
        assert received == {"snapshot", "event"}, topic.pattern


def test_topic_messages_carry_the_topic_payload_schemas(doc: dict[str, Any]) -> None:
    topics_json = json.loads((ROOT / "schemas" / "topics.json").read_text())
    schemas = doc["components"]["schemas"]
    for topic in TOPICS:
        channel = next(c for c in doc["channels"].values() if c["address"] == topic.pattern)
        wrapper = topics_json["properties"][topic.pattern]["$ref"].rsplit("/", 1)[1]
        for kind in ("snapshot", "event"):
            envelope, typed = channel["messages"][kind]["payload"]["allOf"]
            assert envelope == {"$ref": f"#/components/schemas/{kind.capitalize()}Frame"}
            name = topics_json["$defs"][wrapper]["properties"][kind]["$ref"].rsplit("/", 1)[1]
            assert typed["properties"]["payload"] == {"$ref": f"#/components/schemas/{name}"}
            assert schemas[name]["title"] == topics_json["$defs"][name]["title"]


def test_the_catalogues_are_documented_components(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    errors = {m["const"]: m for m in schemas["ErrorCode"]["oneOf"]}
    assert {code: m["description"] for code, m in errors.items()} == {
        code.value: ERROR_CODE_DOCS[code] for code in ErrorCode
    }
    closes = {m["const"]: m for m in schemas["CloseCode"]["oneOf"]}
    assert sorted(closes) == sorted(code.value for code in CloseCode)
    for code in CloseCode:
        advice, meaning = CLOSE_CODE_DOCS[code]
        assert closes[code.value]["x-reconnect"] == advice.value
        assert closes[code.value]["title"] == code.name and meaning in closes[code.value]["description"]


def test_every_method_is_a_send_operation_with_its_typed_reply(doc: dict[str, Any]) -> None:
    methods_json = json.loads((ROOT / "schemas" / "methods.json").read_text())
    assert METHODS, "the demo declares methods"
    for method in METHODS:
        operation = doc["operations"][f"{method.name}.call"]
        assert operation["action"] == "send"
        (request,) = _messages(doc, operation)
        envelope, typed = request["payload"]["allOf"]
        assert envelope == {"$ref": "#/components/schemas/RequestFrame"}
        assert typed["properties"]["method"] == {"const": method.name}
        wrapper = methods_json["properties"][method.name]["$ref"].rsplit("/", 1)[1]
        params = methods_json["$defs"][wrapper]["properties"]["params"]["$ref"].rsplit("/", 1)[1]
        assert typed["properties"]["params"] == {"$ref": f"#/components/schemas/{params}"}
        (reply,) = [
            doc["components"]["messages"][m["$ref"].rsplit("/", 1)[1]] for m in operation["reply"]["messages"]
        ]
        result = methods_json["$defs"][wrapper]["properties"]["result"]["$ref"].rsplit("/", 1)[1]
        assert reply["payload"]["allOf"][1]["properties"]["result"] == {
            "$ref": f"#/components/schemas/{result}"
        }
        assert reply["payload"]["allOf"][1]["properties"]["error"]["properties"]["code"]["examples"] == list(
            method.errors
        )
