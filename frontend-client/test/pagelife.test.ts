/** Browser life: the network, the tab's visibility, the back/forward cache and sleep,
 * with a fake page (window and document event targets) and a clock that can sleep. */
import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import type { SessionsEvent, SessionsSnapshot, Topics } from "@aiohttp-realtime/demo-types";
import { type ClientOptions, RealtimeClient } from "../src/client.js";
import { defaultPage } from "../src/env.js";
import { SocketFactory } from "./fakes.js";
import { FakePage, SleepyClock } from "./pagefakes.js";

let clock: SleepyClock;
let sockets: SocketFactory;
let page: FakePage;

function client(options: ClientOptions = {}): RealtimeClient<Topics> {
  return new RealtimeClient<Topics>({
    url: "ws://test/api/realtime",
    clock,
    WebSocket: sockets.WebSocket,
    transport: "websocket", // the WebSocket's own behaviour: never SSE (sse.test.ts)
    random: () => 0.999999,
    backoff: { baseMs: 100, capMs: 1000 },
    idlePingMs: 1000,
    pongTimeoutMs: 500,
    connectTimeoutMs: 2000,
    healthyAfterMs: 5000,
    page,
    ...options,
  });
}

/** A client that waits ten minutes between attempts: only an event brings it back soon. */
function patient(options: ClientOptions = {}): RealtimeClient<Topics> {
  return client({ backoff: { baseMs: 600_000, capMs: 600_000 }, ...options });
}

function live(c: RealtimeClient<Topics>): void {
  c.connect();
  sockets.last.hello();
  assert.equal(state(c), "live");
}

/** The status's state, unnarrowed: it changes under the assertions. */
function state(c: RealtimeClient<Topics>): string {
  return c.status.state;
}

/** Sockets the client opened and has not closed (a fake never closes by itself). */
function openSockets(): number {
  return sockets.sockets.filter((s) => s.closedByClient === null).length;
}

function snapshot(seq: number, topic = "sessions.state") {
  return { type: "snapshot" as const, topic, seq, payload: { sessions: [] } };
}

function event(seq: number) {
  return { type: "event" as const, topic: "sessions.state", seq, payload: { op: "remove" as const, id: "x" } };
}

beforeEach(() => {
  clock = new SleepyClock();
  sockets = new SocketFactory();
  page = new FakePage();
});

describe("(a) reconnecting at once", () => {
  it("on `online`, instead of waiting out the backoff", () => {
    const c = patient();
    live(c);
    sockets.last.drop(1006);
    clock.advance(1000);
    assert.equal(sockets.sockets.length, 1);
    assert.equal(state(c), "reconnecting");
    page.online();
    assert.equal(sockets.sockets.length, 2);
    assert.equal(state(c), "connecting");
  });

  it("on `pageshow` from the back/forward cache, after `pagehide` closed the socket", () => {
    const c = patient();
    live(c);
    page.pagehide(true);
    page.pageshow(true);
    assert.equal(sockets.sockets.length, 2);
    sockets.last.hello("c2");
    assert.equal(state(c), "live");
  });

  it("on `pageshow` from the cache, closing a socket that the page kept (it is dead)", () => {
    const c = patient();
    live(c);
    const first = sockets.last;
    page.pageshow(true); // no pagehide seen: the socket looks open, but is dead
    assert.deepEqual(first.closedByClient, { code: 1000, reason: "reconnecting" });
    assert.equal(sockets.sockets.length, 2);
    first.drop(1006); // its late close changes nothing
    assert.equal(state(c), "connecting");
  });

  it("not on a first `pageshow` (not persisted), nor on one after close()", () => {
    const c = patient();
    live(c);
    page.pageshow(false);
    assert.equal(sockets.sockets.length, 1);
    c.close();
    page.pageshow(true);
    page.online();
    assert.equal(sockets.sockets.length, 1);
    assert.equal(state(c), "stopped");
  });

  it("when a hidden tab whose socket died is shown again", () => {
    const c = patient();
    live(c);
    page.hide();
    sockets.last.drop(1006);
    clock.advance(60_000); // a hidden tab's timers are throttled anyway
    assert.equal(sockets.sockets.length, 1);
    page.show();
    assert.equal(sockets.sockets.length, 2);
  });

  it("retries at once when the network came back while an attempt was failing", () => {
    const c = patient();
    live(c);
    sockets.last.drop(1006);
    page.online(); // attempt 2 starts
    page.online(); // the network flaps during it: no second socket
    assert.equal(sockets.sockets.length, 2);
    sockets.last.drop(1006); // it was doomed (started offline)
    assert.ok(c.status.state === "reconnecting" && c.status.retryAt === clock.now());
    clock.advance(0);
    assert.equal(sockets.sockets.length, 3);
  });
});

describe("(b) sleep: the heartbeat gap, not a frozen timer", () => {
  it("a timer that fires 60 s late triggers a ping and, without a pong, a reconnect", () => {
    const c = client();
    live(c);
    clock.advance(500);
    clock.sleep(60_000); // the idle timer was due 500 ms later
    clock.advance(500); // awake: it fires, 60 s late by the clock
    assert.deepEqual(sockets.last.sentOf("ping"), [{ type: "ping", id: "ping-1" }]);
    assert.equal(state(c), "live");
    clock.advance(499);
    assert.equal(state(c), "live");
    clock.advance(1); // no pong within pongTimeoutMs
    assert.ok(c.status.state === "reconnecting" && c.status.closeCode === 1006);
    assert.ok(sockets.last.closedByClient !== null);
    clock.advance(100);
    assert.equal(sockets.sockets.length, 2);
  });

  it("a pong timer that fires late probes once more (the pong may be waiting), then gives up", () => {
    const c = client();
    live(c);
    clock.advance(1000); // idle: ping-1
    clock.sleep(60_000); // asleep before its pong could be read
    clock.advance(500); // its pong timer fires 60 s late: not dead yet, a new probe
    assert.deepEqual(sockets.last.sentOf("ping").map((p) => p.id), ["ping-1", "ping-2"]);
    assert.equal(state(c), "live");
    sockets.last.receive({ type: "pong", id: "ping-2" });
    clock.advance(999);
    assert.equal(state(c), "live");

    clock.advance(1); // idle again: ping-3
    clock.sleep(60_000);
    clock.advance(500); // late: ping-4
    clock.advance(500); // on time, and no pong: dead
    assert.equal(state(c), "reconnecting");
    assert.deepEqual(sockets.sockets[0]?.sentOf("ping").map((p) => p.id), ["ping-1", "ping-2", "ping-3", "ping-4"]);
  });

  it("a tab shown after the machine slept pings at once, before its frozen idle timer", () => {
    const c = client({ idlePingMs: 15_000, pongTimeoutMs: 5_000 });
    live(c);
    page.hide();
    clock.advance(10_000);
    clock.sleep(3_600_000); // the idle timer still has 5 s to go when the machine wakes
    page.show();
    assert.equal(sockets.last.sentOf("ping").length, 1);
    clock.advance(5_000);
    assert.equal(state(c), "reconnecting");
  });

  it("a tab shown after a short absence does not ping", () => {
    const c = client({ idlePingMs: 15_000 });
    live(c);
    page.hide();
    clock.advance(3_000);
    page.show();
    assert.equal(sockets.last.sentOf("ping").length, 0);
  });

  it("`online` and `offline` probe a socket that looks open, whatever the gap", () => {
    const c = client({ idlePingMs: 15_000 });
    live(c);
    page.online();
    assert.equal(sockets.last.sentOf("ping").length, 1);
    page.offline(); // a ping is out already: not another
    assert.equal(sockets.last.sentOf("ping").length, 1);
    sockets.last.receive({ type: "pong", id: "ping-1" });
    page.offline();
    assert.equal(sockets.last.sentOf("ping").length, 2);
    clock.advance(500);
    assert.equal(state(c), "reconnecting"); // the network is gone: no pong
  });
});

describe("(c) pauseWhenHidden", () => {
  function subscribed(c: RealtimeClient<Topics>) {
    const seen: string[] = [];
    const handlers = {
      onSnapshot: (_: SessionsSnapshot, seq: number) => seen.push(`snapshot ${seq}`),
      onEvent: (_: SessionsEvent, seq: number) => seen.push(`event ${seq}`),
      onSyncing: () => seen.push("syncing"),
      onPaused: () => seen.push("paused"),
    };
    const off = c.subscribe("sessions.state", handlers);
    c.subscribe("terminals.state", { onSnapshot: () => undefined, onEvent: () => undefined });
    return { seen, off };
  }

  it("unsubscribes every topic after the tab was hidden that long, and resubscribes from snapshots when shown", () => {
    const c = client({ pauseWhenHidden: { afterMs: 30_000 }, idlePingMs: 60_000 });
    const { seen } = subscribed(c);
    live(c);
    sockets.last.receive(snapshot(1));
    page.hide();
    clock.advance(29_999);
    assert.equal(sockets.last.sentOf("unsubscribe").length, 0);
    clock.advance(1);
    assert.deepEqual(sockets.last.sentOf("unsubscribe"), [
      { type: "unsubscribe", topics: ["sessions.state", "terminals.state"] },
    ]);
    assert.equal(c.paused, true);
    assert.equal(state(c), "live"); // the socket stays
    sockets.last.receive(event(2)); // sent before the server read the unsubscribe
    sockets.last.receive(snapshot(2)); // likewise
    page.show();
    assert.equal(c.paused, false);
    assert.deepEqual(sockets.last.sentOf("subscribe").at(-1), {
      type: "subscribe",
      topics: ["sessions.state", "terminals.state"],
    });
    sockets.last.receive(event(9)); // before its snapshot: ignored
    sockets.last.receive(snapshot(9));
    sockets.last.receive(event(10));
    assert.deepEqual(seen, ["syncing", "snapshot 1", "paused", "syncing", "snapshot 9", "event 10"]);
    assert.equal(sockets.sockets.length, 1);
  });

  it("does nothing when the tab is shown again before then", () => {
    const c = client({ pauseWhenHidden: { afterMs: 30_000 }, idlePingMs: 60_000 });
    subscribed(c);
    live(c);
    page.hide();
    clock.advance(20_000);
    page.show();
    clock.advance(20_000);
    assert.equal(sockets.last.sentOf("unsubscribe").length, 0);
    assert.equal(sockets.last.sentOf("subscribe").length, 1);
  });

  it("keeps the topics off the wire through a reconnect and a new subscription while hidden", () => {
    const c = client({ pauseWhenHidden: { afterMs: 0 }, idlePingMs: 60_000 });
    const { off } = subscribed(c);
    live(c);
    page.hide();
    clock.advance(0);
    assert.equal(c.paused, true);
    sockets.last.drop(1006);
    clock.advance(100);
    sockets.last.hello("c2");
    assert.deepEqual(sockets.last.sent, []); // nothing subscribed on the new connection
    c.subscribe("sessions.activity:s-1", { onSnapshot: () => undefined, onEvent: () => undefined });
    off(); // sessions.state's last handler: no unsubscribe, it is not on the wire
    assert.deepEqual(sockets.last.sent, []);
    page.show();
    assert.deepEqual(sockets.last.sent, [{ type: "subscribe", topics: ["terminals.state", "sessions.activity:s-1"] }]);
  });

  it("starts counting when the client connects in a hidden tab", () => {
    page.document.visibilityState = "hidden";
    const c = client({ pauseWhenHidden: { afterMs: 1_000 }, idlePingMs: 60_000 });
    subscribed(c);
    live(c);
    assert.equal(sockets.last.sentOf("subscribe").length, 1);
    clock.advance(1_000);
    assert.equal(sockets.last.sentOf("unsubscribe").length, 1);
  });

  it("is off by default", () => {
    const c = client({ idlePingMs: 600_000 });
    subscribed(c);
    live(c);
    page.hide();
    clock.advance(3_600_000);
    assert.equal(sockets.last.sentOf("unsubscribe").length, 0);
    assert.equal(c.paused, false);
  });
});

describe("(d) one socket at a time", () => {
  it("no second socket while one is open or connecting", () => {
    const c = client({ idlePingMs: 600_000 });
    c.connect(); // connecting
    const poke = () => {
      c.connect();
      c.wake();
      page.online();
      page.offline();
      page.hide();
      page.show();
      page.pageshow(false);
    };
    poke();
    assert.equal(sockets.sockets.length, 1);
    sockets.last.hello();
    poke();
    assert.equal(sockets.sockets.length, 1);
    page.pageshow(true); // a restored page's socket is dead: replaced, never doubled
    assert.equal(sockets.sockets.length, 2);
    assert.equal(openSockets(), 1);
    poke();
    assert.equal(sockets.sockets.length, 2);
  });

  it("no second socket while the token provider is being asked", async () => {
    let resolve: (token: string) => void = () => undefined;
    const c = client({ token: () => new Promise<string>((r) => (resolve = r)) });
    c.connect();
    page.online();
    page.show();
    c.connect();
    resolve("t");
    await Promise.resolve();
    await Promise.resolve();
    assert.equal(sockets.sockets.length, 1);
  });

  it("`pagehide` into the cache closes the socket cleanly and waits for `pageshow`", () => {
    const c = client();
    live(c);
    page.pagehide(false); // unloading for good: the browser closes the socket itself
    assert.equal(sockets.last.closedByClient, null);
    page.pagehide(true);
    assert.deepEqual(sockets.last.closedByClient, { code: 1000, reason: "page hidden" });
    assert.equal(state(c), "reconnecting");
    clock.advance(3_600_000); // frozen in the cache, or thawed by a timer: no reconnect until shown
    page.online();
    page.show();
    assert.equal(sockets.sockets.length, 1);
    page.pageshow(true);
    assert.equal(sockets.sockets.length, 2);
    assert.equal(openSockets(), 1);
  });
});

describe("the page's listeners", () => {
  it("are added by connect() and removed by close()", () => {
    const c = client();
    assert.equal(page.listeners(), 0);
    c.connect();
    assert.equal(page.window.count(), 4); // online, offline, pageshow, pagehide
    assert.equal(page.document.count(), 1); // visibilitychange
    c.connect();
    assert.equal(page.listeners(), 5);
    c.close();
    assert.equal(page.listeners(), 0);
    c.connect();
    assert.equal(page.listeners(), 5);
  });

  it("are not added where there are no event targets (Node), or with page: null", () => {
    assert.deepEqual(defaultPage(), { window: undefined, document: undefined });
    const c = client({ page: undefined }); // the host's: Node has none
    live(c);
    const quiet = client({ page: null });
    live(quiet);
    assert.equal(page.listeners(), 0);
  });

  it("follow only what exists: a worker has a global scope but no document", () => {
    const c = client({ page: { window: page.window } });
    c.connect();
    assert.equal(page.window.count(), 4);
    assert.equal(page.document.count(), 0);
    c.close();
    assert.equal(page.window.count(), 0);
  });

  it("refuses a negative pause", () => {
    assert.throws(() => client({ pauseWhenHidden: { afterMs: -1 } }), RangeError);
  });
});
