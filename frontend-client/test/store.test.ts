import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import type { Session, SessionsEvent, Topics } from "@aiohttp-realtime/demo-types";
import {
  type ClientOptions,
  RealtimeClient,
  type TopicReducer,
  type TopicStoreOptions,
  topicStore,
  topicStores,
} from "../src/index.js";
import { ManualClock, SocketFactory } from "./fakes.js";
import { FakePage } from "./pagefakes.js";

const T = "2026-01-01T00:00:00Z";
const session = (id: string, state: Session["state"] = "idle"): Session => ({
  id,
  title: id,
  state,
  created_at: T,
  updated_at: T,
});

let clock: ManualClock;
let sockets: SocketFactory;

function client(options: ClientOptions = {}): RealtimeClient<Topics> {
  return new RealtimeClient<Topics>({
    url: "ws://test/api/realtime",
    clock,
    WebSocket: sockets.WebSocket,
    random: () => 0.999999,
    backoff: { baseMs: 100, capMs: 1000 },
    idlePingMs: 1000,
    pongTimeoutMs: 500,
    ...options,
  });
}

/** Sessions by id, in arrival order; an event that changes nothing keeps the object. */
const sessionsReducer: TopicReducer<Topics["sessions.state"], readonly Session[]> = {
  snapshot: (snapshot) => snapshot.sessions,
  event: (list, event: SessionsEvent) => {
    if (event.op === "remove") {
      return list.some((s) => s.id === event.id) ? list.filter((s) => s.id !== event.id) : list;
    }
    const old = list.find((s) => s.id === event.session.id);
    if (old !== undefined && JSON.stringify(old) === JSON.stringify(event.session)) return list;
    return [...list.filter((s) => s.id !== event.session.id), event.session];
  },
};

function snapshot(seq: number, ...ids: string[]) {
  const payload = { sessions: ids.map((id) => session(id)) };
  return { type: "snapshot" as const, topic: "sessions.state", seq, payload };
}

function upsert(seq: number, id: string, state: Session["state"] = "idle") {
  const payload = { op: "upsert" as const, session: session(id, state) };
  return { type: "event" as const, topic: "sessions.state", seq, payload };
}

function remove(seq: number, id: string) {
  return { type: "event" as const, topic: "sessions.state", seq, payload: { op: "remove" as const, id } };
}

/** A live client and a sessions.state store with one listener that counts its calls. */
function liveStore(options?: TopicStoreOptions) {
  const c = client();
  const store = topicStore(c, "sessions.state", sessionsReducer, options);
  const calls = { n: 0 };
  const stop = store.subscribe(() => {
    calls.n += 1;
  });
  c.connect();
  sockets.last.hello();
  return { c, store, calls, stop };
}

const ids = (state: readonly Session[] | undefined) => state?.map((s) => `${s.id}:${s.state}`);

beforeEach(() => {
  clock = new ManualClock();
  sockets = new SocketFactory();
});

describe("topic stores", () => {
  it("sends nothing before the first listener, then subscribes once", () => {
    const c = client();
    const store = topicStore(c, "sessions.state", sessionsReducer);
    c.connect();
    sockets.last.hello();
    assert.deepEqual(sockets.last.sentOf("subscribe"), []);
    assert.deepEqual(store.getSnapshot(), { state: undefined, seq: null, status: "syncing", error: null });
    store.subscribe(() => undefined);
    store.subscribe(() => undefined);
    assert.deepEqual(sockets.last.sentOf("subscribe"), [{ type: "subscribe", topics: ["sessions.state"] }]);
    assert.equal(store.active, true);
  });

  it("replaces its state with each snapshot", () => {
    const { store } = liveStore();
    assert.equal(store.getSnapshot().status, "syncing");
    sockets.last.receive(snapshot(4, "a", "b"));
    assert.deepEqual(ids(store.getSnapshot().state), ["a:idle", "b:idle"]);
    assert.equal(store.getSnapshot().status, "live");
    assert.equal(store.getSnapshot().seq, 4);
    store.subscribe(() => undefined); // a second handler on the client: it asks for a fresh snapshot
    sockets.last.receive(snapshot(9, "c"));
    assert.deepEqual(ids(store.getSnapshot().state), ["c:idle"]);
    assert.equal(store.getSnapshot().seq, 9);
  });

  it("applies events in order, each once", () => {
    const { store } = liveStore();
    sockets.last.receive(snapshot(1, "a"));
    sockets.last.receive(upsert(2, "b"));
    sockets.last.receive(upsert(3, "a", "running"));
    sockets.last.receive(upsert(3, "a", "error")); // a duplicate seq: already applied
    sockets.last.receive(remove(4, "b"));
    assert.deepEqual(ids(store.getSnapshot().state), ["a:running"]);
    assert.equal(store.getSnapshot().seq, 4);
  });

  it("returns the same object and calls no listener while nothing changed", () => {
    const { store, calls } = liveStore();
    sockets.last.receive(snapshot(1, "a"));
    const view = store.getSnapshot();
    const before = calls.n;
    assert.equal(store.getSnapshot(), view);
    sockets.last.receive(remove(2, "nobody")); // the reducer returns the same state
    sockets.last.receive(upsert(3, "a")); // the same session again
    assert.equal(calls.n, before);
    assert.equal(store.getSnapshot(), view);
    assert.equal(view.seq, 1); // the seq of the last change: the state shown is that one's
    assert.ok(Object.isFrozen(view));
    sockets.last.receive(upsert(4, "a", "done"));
    assert.equal(calls.n, before + 1);
    assert.notEqual(store.getSnapshot(), view);
  });

  it("goes stale on a disconnect, keeping its state, and fresh after the resync's snapshot", () => {
    const { store } = liveStore();
    sockets.last.receive(snapshot(1, "a", "b"));
    const old = store.getSnapshot();
    sockets.last.drop(1006);
    assert.equal(store.getSnapshot().status, "stale");
    assert.equal(store.getSnapshot().state, old.state);
    assert.equal(store.getSnapshot().seq, 1);
    clock.advance(100); // the reconnect attempt
    assert.equal(store.getSnapshot().status, "stale", "still stale while connecting again");
    sockets.last.hello("c2");
    assert.equal(store.getSnapshot().status, "syncing");
    assert.equal(store.getSnapshot().state, old.state, "the old state is shown until the snapshot");
    assert.deepEqual(sockets.last.sentOf("subscribe"), [{ type: "subscribe", topics: ["sessions.state"] }]);
    sockets.last.receive(upsert(8, "x")); // before the new snapshot: ignored
    sockets.last.receive(snapshot(7, "b", "c"));
    assert.equal(store.getSnapshot().status, "live");
    assert.deepEqual(ids(store.getSnapshot().state), ["b:idle", "c:idle"]);
    sockets.last.receive(upsert(8, "d"));
    assert.deepEqual(ids(store.getSnapshot().state), ["b:idle", "c:idle", "d:idle"]);
    assert.equal(store.getSnapshot().seq, 8);
  });

  it("syncs again after a seq gap: the old state until the fresh snapshot", () => {
    const { store } = liveStore();
    sockets.last.receive(snapshot(1, "a"));
    sockets.last.receive(upsert(5, "lost")); // 2 to 4 never came
    assert.equal(store.getSnapshot().status, "syncing");
    assert.deepEqual(ids(store.getSnapshot().state), ["a:idle"]);
    sockets.last.receive(snapshot(5, "a", "lost"));
    assert.equal(store.getSnapshot().status, "live");
    assert.deepEqual(ids(store.getSnapshot().state), ["a:idle", "lost:idle"]);
  });

  it("shows a topic's error with its code, until a snapshot", () => {
    const { store } = liveStore();
    sockets.last.receive({ type: "error", code: "snapshot_failed", message: "later", topic: "sessions.state" });
    const view = store.getSnapshot();
    assert.equal(view.status, "error");
    assert.equal(view.status === "error" ? view.error.code : null, "snapshot_failed");
    clock.advance(100); // the client retries the subscribe
    sockets.last.receive(snapshot(3, "a"));
    assert.equal(store.getSnapshot().status, "live");
    assert.equal(store.getSnapshot().error, null);
  });

  it("is stale while paused in a hidden tab, and fresh after the snapshot once shown", () => {
    const page = new FakePage();
    const c = client({ page, pauseWhenHidden: { afterMs: 0 }, idlePingMs: 60_000 });
    const store = topicStore(c, "sessions.state", sessionsReducer);
    store.subscribe(() => undefined);
    c.connect();
    sockets.last.hello();
    sockets.last.receive(snapshot(1, "a"));
    page.hide();
    clock.advance(0);
    assert.deepEqual(sockets.last.sentOf("unsubscribe"), [{ type: "unsubscribe", topics: ["sessions.state"] }]);
    assert.equal(store.getSnapshot().status, "stale");
    assert.deepEqual(ids(store.getSnapshot().state), ["a:idle"]);
    page.show();
    assert.equal(store.getSnapshot().status, "syncing");
    sockets.last.receive(snapshot(6, "a", "b"));
    assert.equal(store.getSnapshot().status, "live");
    assert.equal(store.getSnapshot().seq, 6);
  });

  it("is stale (or syncing, with nothing shown yet) while the client is not live", () => {
    const c = client();
    const store = topicStore(c, "sessions.state", sessionsReducer);
    store.subscribe(() => undefined);
    assert.equal(store.getSnapshot().status, "syncing"); // idle, never connected
    c.connect();
    assert.equal(store.getSnapshot().status, "syncing");
    sockets.last.drop(1006);
    assert.equal(store.getSnapshot().status, "stale");
    c.close();
    assert.equal(store.getSnapshot().status, "stale");
  });

  it("unsubscribes when the last listener leaves", () => {
    const { store, stop } = liveStore();
    sockets.last.receive(snapshot(1, "a"));
    const other = store.subscribe(() => undefined);
    stop();
    assert.deepEqual(sockets.last.sentOf("unsubscribe"), []);
    other();
    assert.deepEqual(sockets.last.sentOf("unsubscribe"), [{ type: "unsubscribe", topics: ["sessions.state"] }]);
    assert.equal(store.active, false);
    assert.equal(store.getSnapshot().status, "stale");
    other(); // twice: nothing more
    assert.equal(sockets.last.sentOf("unsubscribe").length, 1);
    // A new listener subscribes again, showing the kept state until the fresh snapshot.
    store.subscribe(() => undefined);
    assert.equal(sockets.last.sentOf("subscribe").length, 2);
    assert.equal(store.getSnapshot().status, "syncing");
    assert.deepEqual(ids(store.getSnapshot().state), ["a:idle"]);
  });

  it("with releaseAfterMs, a listener arriving in time keeps the subscription (no frame)", () => {
    let released = 0;
    const { store, stop } = liveStore({ releaseAfterMs: 0, clock, onRelease: () => (released += 1) });
    sockets.last.receive(snapshot(1, "a"));
    stop();
    const again = store.subscribe(() => undefined); // StrictMode's remount, in the same task
    clock.advance(0);
    assert.deepEqual(sockets.last.sentOf("unsubscribe"), []);
    assert.equal(sockets.last.sentOf("subscribe").length, 1);
    assert.equal(store.getSnapshot().status, "live");
    again();
    assert.deepEqual(sockets.last.sentOf("unsubscribe"), []);
    clock.advance(0);
    assert.deepEqual(sockets.last.sentOf("unsubscribe"), [{ type: "unsubscribe", topics: ["sessions.state"] }]);
    assert.equal(released, 1);
  });

  it("dispose() unsubscribes at once and calls no listener after", () => {
    const { store, calls } = liveStore({ releaseAfterMs: 1000, clock });
    sockets.last.receive(snapshot(1, "a"));
    const before = calls.n;
    store.dispose();
    assert.deepEqual(sockets.last.sentOf("unsubscribe"), [{ type: "unsubscribe", topics: ["sessions.state"] }]);
    sockets.last.receive(upsert(2, "b"));
    sockets.last.drop(1006);
    assert.equal(calls.n, before);
    assert.equal(clock.pending() > 0, true); // the client's reconnect, not a store timer
  });

  it("a throwing listener does not keep the others from being called; its error is rethrown apart", () => {
    const { store, calls } = liveStore();
    store.subscribe(() => {
      throw new Error("a listener's bug");
    });
    const rethrown: (() => void)[] = [];
    const queueMicrotask = globalThis.queueMicrotask;
    globalThis.queueMicrotask = (fn) => rethrown.push(fn); // where the client reports what handlers throw
    try {
      const before = calls.n;
      sockets.last.receive(snapshot(1, "a"));
      assert.equal(calls.n, before + 1);
    } finally {
      globalThis.queueMicrotask = queueMicrotask;
    }
    assert.equal(rethrown.length, 1);
    assert.throws(rethrown[0] ?? (() => undefined), /a listener's bug/);
  });
});

describe("topic store families (parametrised topics)", () => {
  const activity = {
    snapshot: (s: { messages: { id: string; text: string }[] }) => s.messages.map((m) => m.text),
    event: (texts: string[], e: { op: string }) => (e.op === "append" ? [...texts, "+"] : texts),
  };

  it("gives one store per name, shared while in use, a new one after its release", () => {
    const c = client();
    const family = topicStores(c, (id: string) => `sessions.activity:${id}`, activity);
    c.connect();
    sockets.last.hello();
    const a = family.at("a");
    assert.equal(family.at("a"), a);
    assert.notEqual(family.at("b"), a);
    assert.equal(a.topic, "sessions.activity:a");
    const stop = a.subscribe(() => undefined);
    sockets.last.receive({
      type: "snapshot",
      topic: "sessions.activity:a",
      seq: 0,
      payload: { session_id: "a", messages: [] },
    });
    assert.deepEqual(a.getSnapshot().state, []);
    assert.equal(family.at("a"), a);
    stop();
    assert.deepEqual(sockets.last.sentOf("unsubscribe"), [{ type: "unsubscribe", topics: ["sessions.activity:a"] }]);
    assert.notEqual(family.at("a"), a);
  });
});
