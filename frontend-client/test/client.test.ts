import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import type { SessionsEvent, SessionsSnapshot, Topics } from "@aiohttp-realtime/demo-types";
import {
  type ClientOptions,
  type ConnectionStatus,
  type GapInfo,
  RealtimeClient,
  MAX_RECONNECT_WITHIN_MS,
  RECONNECT_ADVICE,
  reconnectAdvice,
  reconnectWithinMs,
  type WebSocketConstructor,
} from "../src/index.js";
import { ManualClock, SocketFactory } from "./fakes.js";

const T = "2026-01-01T00:00:00Z";
const session = (id: string) => ({ id, title: id, state: "idle" as const, created_at: T, updated_at: T });

let clock: ManualClock;
let sockets: SocketFactory;

function client(options: ClientOptions = {}): RealtimeClient<Topics> {
  return new RealtimeClient<Topics>({
    url: "ws://test/api/realtime",
    clock,
    WebSocket: sockets.WebSocket,
    transport: "websocket", // the WebSocket's own behaviour: never SSE (sse.test.ts)
    random: () => 0.999999, // the top of every jitter window: deterministic
    backoff: { baseMs: 100, capMs: 1000 },
    idlePingMs: 1000,
    pongTimeoutMs: 500,
    connectTimeoutMs: 2000,
    healthyAfterMs: 5000,
    ...options,
  });
}

/** A sessions.state subscription that records what its handlers saw. */
function record(c: RealtimeClient<Topics>) {
  const seen: string[] = [];
  const unsubscribe = c.subscribe("sessions.state", {
    onSnapshot: (payload: SessionsSnapshot, seq) => seen.push(`snapshot ${seq} ${payload.sessions.length}`),
    onEvent: (payload: SessionsEvent, seq) => seen.push(`event ${seq} ${payload.op}`),
  });
  return { seen, unsubscribe };
}

function snapshot(seq: number, n = 0) {
  const sessions = Array.from({ length: n }, (_, i) => session(`s${i}`));
  return { type: "snapshot" as const, topic: "sessions.state", seq, payload: { sessions } };
}

function event(seq: number, topic = "sessions.state") {
  return { type: "event" as const, topic, seq, payload: { op: "remove" as const, id: "x" } };
}

beforeEach(() => {
  clock = new ManualClock();
  sockets = new SocketFactory();
});

describe("subscriptions", () => {
  it("subscribes after hello and hands over the snapshot, then events in order", () => {
    const c = client();
    const { seen } = record(c);
    c.connect();
    assert.equal(sockets.last.url, "ws://test/api/realtime");
    assert.deepEqual(sockets.last.sent, []);
    sockets.last.hello();
    assert.deepEqual(sockets.last.sent, [{ type: "subscribe", topics: ["sessions.state"] }]);
    sockets.last.receive(event(4)); // before the snapshot: the snapshot will reflect it
    sockets.last.receive(snapshot(5, 2));
    sockets.last.receive(event(5)); // already reflected by the snapshot
    sockets.last.receive(event(6));
    sockets.last.receive(event(7));
    assert.deepEqual(seen, ["snapshot 5 2", "event 6 remove", "event 7 remove"]);
  });

  it("re-subscribes a topic after a seq gap and ignores events until its snapshot", () => {
    const c = client();
    const { seen } = record(c);
    const gaps: GapInfo[] = [];
    c.onGap((gap) => gaps.push(gap));
    c.connect();
    sockets.last.hello();
    sockets.last.receive(snapshot(1));
    sockets.last.receive(event(2));
    sockets.last.receive(event(4)); // 3 is missing
    assert.deepEqual(gaps, [{ topic: "sessions.state", expected: 3, got: 4 }]);
    assert.deepEqual(sockets.last.sentOf("subscribe").at(-1), { type: "subscribe", topics: ["sessions.state"] });
    sockets.last.receive(event(5)); // still in flight from before the re-subscribe
    sockets.last.receive(snapshot(5, 3));
    sockets.last.receive(event(6));
    assert.deepEqual(seen, ["snapshot 1 0", "event 2 remove", "snapshot 5 3", "event 6 remove"]);
  });

  it("stops delivering and tells the server when the last handler unsubscribes", () => {
    const c = client();
    const { seen, unsubscribe } = record(c);
    c.connect();
    sockets.last.hello();
    sockets.last.receive(snapshot(1));
    unsubscribe();
    assert.deepEqual(sockets.last.sentOf("unsubscribe"), [{ type: "unsubscribe", topics: ["sessions.state"] }]);
    sockets.last.receive(event(2));
    assert.deepEqual(seen, ["snapshot 1 0"]);
    unsubscribe(); // twice is harmless
    assert.equal(sockets.last.sentOf("unsubscribe").length, 1);
  });

  it("gives a second handler of a topic its own snapshot", () => {
    const c = client();
    const first = record(c);
    c.connect();
    sockets.last.hello();
    sockets.last.receive(snapshot(1));
    const second = record(c);
    assert.equal(sockets.last.sentOf("subscribe").length, 2);
    sockets.last.receive(snapshot(1, 1));
    sockets.last.receive(event(2));
    assert.deepEqual(second.seen, ["snapshot 1 1", "event 2 remove"]);
    assert.deepEqual(first.seen, ["snapshot 1 0", "snapshot 1 1", "event 2 remove"]);
    second.unsubscribe();
    assert.equal(sockets.last.sentOf("unsubscribe").length, 0); // `first` still listens
  });

  for (const code of ["snapshot_failed", "rate_limited", "unavailable"] as const) {
    it(`retries a topic refused with ${code}, with backoff`, () => {
      const c = client();
      record(c);
      c.connect();
      sockets.last.hello();
      sockets.last.receive({ type: "error" as const, code, message: "x", topic: "sessions.state" });
      assert.equal(sockets.last.sentOf("subscribe").length, 1);
      clock.advance(100);
      assert.equal(sockets.last.sentOf("subscribe").length, 2);
    });
  }

  it("does not retry a topic refused for good (forbidden)", () => {
    const c = client();
    record(c);
    c.connect();
    sockets.last.hello();
    const socket = sockets.last;
    socket.receive({ type: "error" as const, code: "forbidden", message: "x", topic: "sessions.state" });
    assert.equal(socket.sentOf("subscribe").length, 1);
    clock.advance(5_000); // well past every retry delay, before the idle ping
    assert.equal(socket.sentOf("subscribe").length, 1);
  });
});

describe("protocol version", () => {
  it("stops, without reconnecting, when the server speaks another protocol", () => {
    const c = client();
    record(c);
    c.connect();
    const socket = sockets.last;
    socket.onmessage?.({ data: JSON.stringify({ type: "hello", connection_id: "c", protocol: 2 }) });
    assert.equal(c.status.state, "stopped");
    assert.equal(socket.sentOf("subscribe").length, 0);
    clock.advance(60_000);
    assert.equal(sockets.last, socket); // no new attempt
  });
});

describe("reconnecting", () => {
  it("re-sends every active subscription after a reconnect and resyncs from snapshots", () => {
    const c = client();
    const { seen } = record(c);
    const off = c.subscribe("terminals.state", { onSnapshot: () => undefined, onEvent: () => undefined });
    c.subscribe("sessions.activity:s-1", { onSnapshot: () => undefined, onEvent: () => undefined });
    off();
    c.connect();
    sockets.last.hello();
    sockets.last.receive(snapshot(3));
    sockets.last.drop(1006);
    assert.equal(c.status.state, "reconnecting");
    clock.advance(100);
    assert.equal(sockets.sockets.length, 2);
    sockets.last.hello("c2");
    assert.deepEqual(sockets.last.sent, [{ type: "subscribe", topics: ["sessions.state", "sessions.activity:s-1"] }]);
    sockets.last.receive(event(4)); // no snapshot yet on this connection
    sockets.last.receive(snapshot(9, 1));
    assert.deepEqual(seen, ["snapshot 3 0", "snapshot 9 1"]);
  });

  it("backs off exponentially while attempts fail, and says when it retries", () => {
    const c = client();
    const statuses: ConnectionStatus[] = [];
    c.onStatus((s) => statuses.push(s));
    c.connect();
    const delays: number[] = [];
    for (let i = 0; i < 6; i++) {
      sockets.last.drop(1006);
      const status = c.status;
      assert.equal(status.state, "reconnecting");
      if (status.state !== "reconnecting") return;
      delays.push(status.retryAt - clock.now());
      clock.advance(status.retryAt - clock.now());
    }
    assert.deepEqual(delays, [99, 199, 399, 799, 999, 999]);
    assert.equal(sockets.sockets.length, 7);
    assert.deepEqual(statuses.slice(0, 3).map((s) => s.state), ["idle", "connecting", "reconnecting"]);
  });

  it("resets the backoff after a healthy period", () => {
    const c = client({ idlePingMs: 60_000 });
    c.connect();
    for (let i = 0; i < 3; i++) {
      sockets.last.drop(1006);
      clock.advance(1000);
    }
    sockets.last.hello();
    clock.advance(4999);
    sockets.last.drop(1006); // live, but not for long enough
    assert.ok(c.status.state === "reconnecting" && c.status.retryAt - clock.now() === 799);
    clock.advance(1000);
    sockets.last.hello();
    clock.advance(5000);
    sockets.last.drop(1006);
    assert.ok(c.status.state === "reconnecting" && c.status.retryAt - clock.now() === 99);
  });

  it("does not reconnect after the server's normal close (1000)", () => {
    const c = client();
    c.connect();
    sockets.last.hello();
    sockets.last.drop(1000, "done");
    assert.deepEqual(c.status, { state: "stopped", closeCode: 1000, reason: "the server asked not to reconnect" });
    clock.advance(3_600_000);
    assert.equal(sockets.sockets.length, 1);
  });

  it("reconnects at once after 1001 (server restart), without growing the backoff", () => {
    const c = client({ random: () => 0.5, goingAwayJitterMs: 200 });
    c.connect();
    sockets.last.hello();
    sockets.last.drop(1001);
    assert.ok(c.status.state === "reconnecting" && c.status.retryAt - clock.now() === 100);
    clock.advance(100);
    assert.equal(sockets.sockets.length, 2);
    sockets.last.drop(1006); // the restarted server is not up yet: first backoff window
    assert.ok(c.status.state === "reconnecting" && c.status.retryAt - clock.now() === 50);
  });

  it("stays closed after close()", () => {
    const c = client();
    c.connect();
    sockets.last.hello();
    c.close();
    assert.equal(c.status.state, "stopped");
    assert.deepEqual(sockets.last.closedByClient, { code: 1000, reason: "client closed" });
    clock.advance(60_000);
    assert.equal(sockets.sockets.length, 1);
  });

  it("stays closed when a status listener calls close() while connecting or reconnecting", () => {
    for (const state of ["connecting", "reconnecting"] as const) {
      const c = client();
      const opened = sockets.sockets.length;
      c.onStatus((status) => status.state === state && c.close());
      c.connect();
      sockets.sockets.at(-1)?.drop(1006);
      clock.advance(60_000);
      assert.equal(c.status.state, "stopped", state);
      assert.ok(sockets.sockets.length - opened <= 1, state);
    }
  });

  it("reconnects at once on wake() instead of waiting", () => {
    const c = client({ backoff: { baseMs: 10_000, capMs: 10_000 } });
    c.connect();
    sockets.last.drop(1006);
    c.wake();
    assert.equal(sockets.sockets.length, 2);
    assert.equal(c.status.state, "connecting");
  });
});

describe("liveness", () => {
  it("pings when idle and keeps a connection that answers", () => {
    const c = client();
    c.connect();
    sockets.last.hello();
    clock.advance(999);
    assert.equal(sockets.last.sentOf("ping").length, 0);
    clock.advance(1);
    const [ping] = sockets.last.sentOf("ping");
    assert.deepEqual(ping, { type: "ping", id: "ping-1" });
    sockets.last.receive({ type: "pong", id: "ping-1" });
    clock.advance(999);
    assert.equal(c.status.state, "live");
    assert.equal(sockets.last.sentOf("ping").length, 1);
  });

  it("does not ping while frames keep arriving", () => {
    const c = client();
    record(c);
    c.connect();
    sockets.last.hello();
    sockets.last.receive(snapshot(1));
    for (let seq = 2; seq < 10; seq++) {
      clock.advance(900);
      sockets.last.receive(event(seq));
    }
    assert.equal(sockets.last.sentOf("ping").length, 0);
  });

  it("treats a missing pong as a dead connection", () => {
    const c = client();
    c.connect();
    sockets.last.hello();
    clock.advance(1000); // ping
    sockets.last.receive({ type: "pong", id: "wrong" });
    clock.advance(500); // no pong for ping-1
    assert.ok(sockets.last.closedByClient !== null);
    assert.ok(c.status.state === "reconnecting" && c.status.closeCode === 1006);
    clock.advance(100);
    assert.equal(sockets.sockets.length, 2);
  });

  it("gives up on a connection that never says hello", () => {
    const c = client();
    c.connect();
    clock.advance(2000);
    assert.equal(c.status.state, "reconnecting");
    assert.ok(sockets.last.closedByClient !== null);
  });

  it("ignores a late close event from a socket it already gave up on", () => {
    const c = client();
    c.connect();
    const first = sockets.last;
    clock.advance(2000); // connect timeout
    clock.advance(100); // reconnect
    sockets.last.hello();
    first.drop(1000); // late: must not stop the new connection
    assert.equal(c.status.state, "live");
  });
});

describe("close codes", () => {
  it("follows the generated RECONNECT_ADVICE for every code of the catalogue", () => {
    const codes = Object.keys(RECONNECT_ADVICE).map(Number);
    assert.ok(codes.length >= 7);
    /** The wait after `code` closed a connection live for `liveMs`; null: stopped. */
    function waitAfter(code: number, liveMs: number): number | null {
      clock = new ManualClock();
      sockets = new SocketFactory();
      const c = client({ random: () => 0.5, goingAwayJitterMs: 200, idlePingMs: 60_000 });
      c.connect();
      sockets.last.hello();
      clock.advance(liveMs);
      sockets.last.drop(code);
      const status = c.status;
      return status.state === "reconnecting" ? status.retryAt - clock.now() : null;
    }
    // Jitter window 200, first backoff window 100, random 0.5: at once waits 100, backoff 50.
    // "new_token" (the credential expired) is at once after a healthy connection (the
    // next connect asks the provider again), with backoff after a short one.
    const advice = { "100 100": "now", "50 50": "backoff", "50 100": "new_token", "null null": "never" };
    for (const code of codes) {
      const seen = `${waitAfter(code, 0)} ${waitAfter(code, 5000)}`;
      const did = advice[seen as keyof typeof advice] ?? seen;
      assert.equal(did, reconnectAdvice(code), `close code ${code}`);
      assert.equal(did, RECONNECT_ADVICE[code as keyof typeof RECONNECT_ADVICE], `close code ${code}`);
    }
  });

  it("stops after 1000, reconnects at once after 1001, backs off after 1008 and a code not in the catalogue", () => {
    assert.deepEqual([1000, 1001, 1008, 4999, 1006].map(reconnectAdvice), ["never", "now", "backoff", "backoff", "backoff"]);
    const c = client({ random: () => 0.5, goingAwayJitterMs: 200 });
    c.connect();
    sockets.last.hello();
    sockets.last.drop(4999);
    assert.ok(c.status.state === "reconnecting" && c.status.retryAt - clock.now() === 50);
    assert.equal(c.status.closeCode, 4999);
  });
});

describe("the reconnect window of a restart (close reason reconnect_within_ms=N)", () => {
  const restarting = (ms: number | string) => `server restarting; reconnect_within_ms=${ms}`;

  /** The wait the client chose after its live socket closed with `code` and `reason`. */
  function waitAfter(code: number, reason: string, options: ClientOptions = {}): number {
    const c = client({ random: () => 0.5, goingAwayJitterMs: 200, ...options });
    c.connect();
    sockets.last.hello();
    sockets.last.drop(code, reason);
    const status = c.status;
    assert.ok(status.state === "reconnecting", `${code} ${reason}: ${status.state}`);
    assert.equal(status.closeCode, code);
    return status.retryAt - clock.now();
  }

  it("parses the window as the server writes it, capped, and nothing else", () => {
    assert.equal(reconnectWithinMs(restarting(5000)), 5000);
    assert.equal(reconnectWithinMs("reconnect_within_ms=0"), 0);
    assert.equal(reconnectWithinMs("reconnect_within_ms=7; and more"), 7);
    assert.equal(reconnectWithinMs(restarting(999_999_999)), MAX_RECONNECT_WITHIN_MS);
    assert.equal(MAX_RECONNECT_WITHIN_MS, 60_000);
    for (const reason of [
      "",
      "server restarting",
      restarting(99_999_999_999), // more than 9 digits: no hint, not a huge one
      restarting(-5),
      restarting("1e9"),
      restarting("5000ms"),
      restarting(""),
      restarting(" 5000"),
      restarting("０５"), // fullwidth digits are not digits here
      "xreconnect_within_ms=5000",
      "RECONNECT_WITHIN_MS=5000",
      "reconnect_within_ms:5000",
      "\u0000".repeat(123),
      null,
      undefined,
    ]) {
      assert.equal(reconnectWithinMs(reason), null, JSON.stringify(reason));
    }
  });

  it("waits a uniform draw within the window after 1012: 8000 ms and random 0.5 retry at 4000 ms, not before", () => {
    const c = client({ random: () => 0.5, goingAwayJitterMs: 200 });
    c.connect();
    sockets.last.hello();
    sockets.last.drop(1012, restarting(8000));
    assert.deepEqual(c.status, { state: "reconnecting", attempt: 0, retryAt: 4000, closeCode: 1012 });
    clock.advance(3999);
    assert.equal(sockets.sockets.length, 1);
    assert.equal(c.status.state, "reconnecting");
    clock.advance(1);
    assert.equal(sockets.sockets.length, 2);
    assert.equal(c.status.state, "connecting");
  });

  it("draws over the whole window: full jitter, from 0 to just below the window", () => {
    assert.equal(waitAfter(1012, restarting(8000), { random: () => 0 }), 0);
    assert.equal(waitAfter(1012, restarting(8000), { random: () => 0.999999 }), 7999);
    assert.equal(waitAfter(1012, restarting(0)), 0);
  });

  it("caps a window above 60 s at 60 s", () => {
    assert.equal(waitAfter(1012, restarting(120_000)), 30_000);
    assert.equal(waitAfter(1012, restarting(999_999_999), { random: () => 0.999999 }), 59_999);
  });

  it("honours the window after 1001 (going away) too", () => {
    assert.equal(waitAfter(1001, "server shutting down; reconnect_within_ms=3000"), 1500);
  });

  it("falls back to goingAwayJitterMs after 1012 without a window", () => {
    assert.equal(waitAfter(1012, "server restarting"), 100);
    assert.equal(waitAfter(1012, ""), 100);
    assert.equal(waitAfter(1012, "server restarting", { goingAwayJitterMs: 1000 }), 500);
  });

  it("is not broken by a hostile or garbled reason: the default window, or at most 60 s", () => {
    for (const reason of [
      restarting(99_999_999_999),
      restarting("-1"),
      restarting("NaN"),
      restarting("Infinity"),
      "reconnect_within_ms=".repeat(6),
      "\ud800 garbage \u0000",
    ]) {
      assert.equal(waitAfter(1012, reason), 100, reason);
    }
    // A close event without a reason (a SocketLike that leaves it out).
    const c = client({ random: () => 0.5, goingAwayJitterMs: 200 });
    c.connect();
    sockets.last.hello();
    sockets.last.onclose?.({ code: 1012 } as { code: number; reason: string });
    assert.ok(c.status.state === "reconnecting" && c.status.retryAt - clock.now() === 100);
  });

  it("ignores a window on a close whose advice is backoff: the backoff decides", () => {
    assert.equal(waitAfter(1011, "oops; reconnect_within_ms=50000"), 50);
    assert.equal(waitAfter(1006, restarting(50_000)), 50);
  });

  it("does not grow the backoff: a failed attempt after 1012 waits in the first backoff window", () => {
    const c = client({ random: () => 0.5 });
    c.connect();
    for (let i = 0; i < 3; i++) {
      sockets.last.hello();
      sockets.last.drop(1012, restarting(8000));
      assert.ok(c.status.state === "reconnecting" && c.status.attempt === 0);
      clock.advance(4000);
      assert.deepEqual(c.status, { state: "connecting", attempt: 0, transport: "websocket" });
    }
    sockets.last.drop(1006); // the restarted server is not up yet
    assert.ok(c.status.state === "reconnecting" && c.status.retryAt - clock.now() === 50);
    assert.equal(c.status.attempt, 1);
  });

  it("jitters the first reconnect after a drop as well: Backoff.next() at attempt 0 is drawn from [0, baseMs)", () => {
    // No change needed for issue 19: with the defaults a herd dropped by 1006 (or told to
    // back off) spreads over the first 500 ms, and further over each later window.
    assert.equal(waitAfter(1006, "", { random: () => 0 }), 0);
    assert.equal(waitAfter(1006, "", { random: () => 0.5 }), 50);
    assert.equal(waitAfter(1006, "", { random: () => 0.999999 }), 99);
    assert.equal(waitAfter(1013, "", { random: () => 0.25 }), 25);
  });
});

describe("the host", () => {
  /** Run `fn` with globalThis.WebSocket replaced (Node 20 has none; Node 22 has one). */
  function withGlobalWebSocket(value: WebSocketConstructor | undefined, fn: () => void): void {
    const had = Object.getOwnPropertyDescriptor(globalThis, "WebSocket");
    Object.defineProperty(globalThis, "WebSocket", { value, configurable: true, writable: true });
    try {
      fn();
    } finally {
      if (had === undefined) Reflect.deleteProperty(globalThis, "WebSocket");
      else Object.defineProperty(globalThis, "WebSocket", had);
    }
  }

  it("refuses to start without a WebSocket implementation, naming the option and `ws`", () => {
    withGlobalWebSocket(undefined, () => {
      assert.throws(
        () => new RealtimeClient<Topics>({ url: "ws://test/api/realtime" }),
        (error: unknown) =>
          error instanceof Error && error.message.includes("`WebSocket` option") && error.message.includes("`ws`"),
      );
    });
  });

  it("uses the global WebSocket when there is one", () => {
    withGlobalWebSocket(sockets.WebSocket, () => {
      new RealtimeClient<Topics>({ url: "ws://test/api/realtime", clock }).connect();
    });
    assert.equal(sockets.last.url, "ws://test/api/realtime");
  });

  it("needs a url where there is no page to take it from", () => {
    assert.equal("location" in globalThis, false);
    assert.throws(() => new RealtimeClient<Topics>({ WebSocket: sockets.WebSocket }), /no `url` given/);
  });
});
