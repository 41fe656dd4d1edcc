import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Message, Session } from "@aiohttp-realtime/demo-types";
import { ActivityState, applyTextDelta, SessionsState } from "../demo/state.js";

const T = "2026-01-01T00:00:00Z";

function message(id: string, text: string, streaming = true): Message {
  return { id, session_id: "s1", role: "assistant", text, streaming, created_at: T };
}

function session(id: string, state: Session["state"] = "idle", created_at = T): Session {
  return { id, title: id, state, created_at, updated_at: created_at };
}

describe("applyTextDelta", () => {
  it("appends a delta that extends the text", () => {
    assert.equal(applyTextDelta("Hello", 5, ", world"), "Hello, world");
  });

  it("rewrites from the offset when the delta overlaps the end", () => {
    assert.equal(applyTextDelta("Hello, wo", 5, ", world"), "Hello, world");
  });

  it("ignores a delta the text already reflects", () => {
    assert.equal(applyTextDelta("Hello, world!", 5, ", world"), "Hello, world!");
  });

  it("counts offsets in code points, like Python's len", () => {
    // "😀" is one code point but two UTF-16 units: String.slice would cut it in half.
    assert.equal(applyTextDelta("a😀", 2, "b"), "a😀b");
    assert.equal(applyTextDelta("a😀b", 2, "bc"), "a😀bc");
    assert.equal(applyTextDelta("a😀bc", 2, "b"), "a😀bc");
  });
});

describe("ActivityState", () => {
  it("replaces on snapshot and applies append, delta and end", () => {
    const state = new ActivityState("s1");
    state.replace({ session_id: "s1", messages: [message("m1", "old", false)] });
    state.apply({ op: "append", message: message("m2", "Hi") });
    state.apply({ op: "delta", message_id: "m2", offset: 2, text: " there" });
    assert.deepEqual(state.list().map((m) => m.text), ["old", "Hi there"]);
    state.apply({ op: "end", message_id: "m2", text: "Hi there!" });
    assert.deepEqual(state.list()[1], message("m2", "Hi there!", false));
    state.replace({ session_id: "s1", messages: [] });
    assert.deepEqual(state.list(), []);
  });

  it("ignores deltas for messages it does not have", () => {
    const state = new ActivityState("s1");
    state.apply({ op: "delta", message_id: "nope", offset: 0, text: "x" });
    assert.deepEqual(state.list(), []);
  });
});

describe("SessionsState", () => {
  it("upserts and removes by id, listing oldest first", () => {
    const state = new SessionsState();
    state.replace({ sessions: [session("b", "idle", "2026-01-02T00:00:00Z"), session("a")] });
    state.apply({ op: "upsert", session: session("a", "running") });
    state.apply({ op: "remove", id: "b" });
    state.apply({ op: "remove", id: "missing" });
    assert.deepEqual(state.list(), [session("a", "running")]);
  });
});
