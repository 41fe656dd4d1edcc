import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import type { SessionsEvent, SessionsSnapshot, Topics } from "@aiohttp-realtime/demo-types";
import {
  type ClientOptions,
  type ConnectionStatus,
  RealtimeClient,
  SseParser,
  sseUrlFor,
  type WebSocketConstructor,
} from "../src/index.js";
import { ManualClock, SocketFactory } from "./fakes.js";
import { FakeFetch, settle } from "./ssefakes.js";


let clock: ManualClock;
let sockets: SocketFactory;
let net: FakeFetch;

/** A WebSocket class that must never be used. */
const NoWebSocket = class {
  constructor() {
    throw new Error("a WebSocket was opened");
  }
} as unknown as WebSocketConstructor;

function client(options: ClientOptions = {}): RealtimeClient<Topics> {
  return new RealtimeClient<Topics>({
    url: "ws://test/api/realtime",
    clock,
    WebSocket: sockets.WebSocket,
    fetch: net.fetch,
    page: null,
    random: () => 0.999999,
    backoff: { baseMs: 100, capMs: 1000 },
    idlePingMs: 1000,
    pongTimeoutMs: 500,
    connectTimeoutMs: 2000,
    healthyAfterMs: 5000,
    wsRetry: { initialMs: 60_000, maxMs: 600_000 },
    ...options,
  });
}

function record(c: RealtimeClient<Topics>): string[] {
  const seen: string[] = [];
  c.subscribe("sessions.state", {
    onSnapshot: (payload: SessionsSnapshot, seq) => seen.push(`snapshot ${seq} ${payload.sessions.length}`),
    onEvent: (payload: SessionsEvent, seq) => seen.push(`event ${seq} ${payload.op}`),
  });
  return seen;
}

const snapshot = (seq: number) => ({ type: "snapshot" as const, topic: "sessions.state", seq, payload: { sessions: [] } });
const event = (seq: number) => ({
  type: "event" as const,
  topic: "sessions.state",
  seq,
  payload: { op: "remove" as const, id: "x" },
});

function transports(statuses: ConnectionStatus[]): string[] {
  return statuses.map((s) => ("transport" in s ? `${s.state}:${s.transport}` : s.state));
}

beforeEach(() => {
  clock = new ManualClock();
  sockets = new SocketFactory();
  net = new FakeFetch();
});

describe("the SSE parser", () => {
  it("reads events split anywhere across chunks, skips comments, joins data lines", () => {
    const p = new SseParser();
    const text = ': ping\n\ndata: {"a":1}\n\nevent: close\ndata: {"code":1012,\ndata: "reason":"r"}\n\n: ping\r\n\r\ndata:x\r\n\r\n';
    const events = [];
    for (const ch of text) events.push(...p.feed(ch)); // one character at a time
    assert.deepEqual(events, [
      { event: "message", data: '{"a":1}' },
      { event: "close", data: '{"code":1012,\n"reason":"r"}' },
      { event: "message", data: "x" },
    ]);
    const whole = new SseParser().feed(text);
    assert.deepEqual(whole, events);
  });

  it("handles a CRLF split between chunks and lone CRs", () => {
    const p = new SseParser();
    assert.deepEqual(p.feed("data: a\r"), []);
    assert.deepEqual(p.feed("\n\r"), [{ event: "message", data: "a" }]);
    assert.deepEqual(p.feed("data: b\r\r"), [{ event: "message", data: "b" }]);
    assert.deepEqual(p.feed("event: x\n\n"), []); // no data: no event
    assert.deepEqual(p.feed("data: c\n\n"), [{ event: "message", data: "c" }]); // the event name was reset
  });

  it("derives the stream's URL from the WebSocket's", () => {
    assert.equal(sseUrlFor("ws://h:8080/api/realtime"), "http://h:8080/api/realtime/sse");
    assert.equal(sseUrlFor("wss://h/api/realtime/"), "https://h/api/realtime/sse");
    assert.equal(sseUrlFor("wss://h/api/realtime?x=1"), "https://h/api/realtime/sse?x=1");
  });
});

describe("transport: sse", () => {
  it("streams frames, POSTs client frames with the secret, never touches WebSocket", async () => {
    const c = client({ transport: "sse", WebSocket: NoWebSocket, token: "tok-1" });
    const statuses: ConnectionStatus[] = [];
    c.onStatus((s) => statuses.push(s));
    const seen = record(c);
    c.connect();
    await settle();
    assert.equal(net.streams.length, 1);
    assert.equal(net.last.url, "http://test/api/realtime/sse");
    assert.equal(net.last.init.headers.Authorization, "Bearer tok-1");
    assert.equal(net.last.init.headers.Accept, "text/event-stream");
    net.last.write(": ping\n\n");
    net.last.hello("c9", "sek");
    await settle();
    assert.equal(c.status.state, "live");
    assert.deepEqual(transports(statuses), ["idle", "connecting:sse", "live:sse"]);
    assert.equal(net.posts.length, 1);
    assert.equal(net.posts[0]?.url, "http://test/api/realtime/sse/c9");
    assert.deepEqual(net.posts[0]?.headers, {
      "Content-Type": "application/json",
      Authorization: "Bearer tok-1",
      "X-Realtime-Secret": "sek",
    });
    assert.deepEqual(net.posts[0]?.body, { type: "subscribe", topics: ["sessions.state"] });
    net.last.frame(snapshot(3));
    net.last.write("data: " + JSON.stringify(event(4)).slice(0, 10)); // an event split across chunks
    await settle();
    net.last.write(JSON.stringify(event(4)).slice(10) + "\n\n");
    await settle();
    assert.deepEqual(seen, ["snapshot 3 0", "event 4 remove"]);
    // The idle ping goes by POST too, and the pong comes on the stream.
    clock.advance(1000);
    await settle();
    assert.deepEqual(net.frames().at(-1), { type: "ping", id: "ping-1" });
    net.last.frame({ type: "pong", id: "ping-1" });
    await settle();
    clock.advance(600);
    assert.equal(c.status.state, "live");
    assert.equal(sockets.sockets.length, 0);
    c.close();
    assert.ok(net.last.aborted || net.last.cancelled);
  });

  it("batches the frames of one tick into one POST, one POST at a time", async () => {
    const c = client({ transport: "sse" });
    c.connect();
    await settle();
    let release: (() => void) | null = null;
    net.answer = () =>
      new Promise((resolve) => {
        release = () => resolve({ status: 202 });
      });
    net.last.hello();
    await settle();
    c.wake(); // a ping: the first POST, held
    await settle();
    // Queued while the first POST is out: one POST after it, in order.
    c.subscribe("sessions.state", { onSnapshot: () => undefined, onEvent: () => undefined });
    c.subscribe("terminals.state", { onSnapshot: () => undefined, onEvent: () => undefined });
    await settle();
    assert.equal(net.posts.length, 1);
    (release as unknown as () => void)();
    await settle();
    assert.equal(net.posts.length, 2);
    assert.deepEqual(net.posts[1]?.body, [
      { type: "subscribe", topics: ["sessions.state"] },
      { type: "subscribe", topics: ["terminals.state"] },
    ]);
    assert.deepEqual(net.posts[0]?.body, { type: "ping", id: "ping-1" });
    (release as unknown as () => void)();
    await settle();
    assert.equal(net.posts.length, 2);
    c.close();
  });

  it("caps a batch at 64 frames", async () => {
    const c = client({ transport: "sse" });
    for (let i = 0; i < 70; i += 1) {
      c.subscribe(`session.${i}.activity` as "sessions.state", { onSnapshot: () => undefined, onEvent: () => undefined });
    }
    c.connect();
    await settle();
    net.last.hello();
    await settle(10);
    // One subscribe frame of 70 topics' worth is split by 100s: one frame. Make several
    // frames in one tick instead: resubscribes after gaps.
    net.posts.length = 0;
    for (let i = 0; i < 70; i += 1) {
      net.last.frame({ type: "snapshot", topic: `session.${i}.activity`, seq: 1, payload: {} });
      net.last.frame({ type: "event", topic: `session.${i}.activity`, seq: 5, payload: {} });
    }
    await settle(10);
    const sizes = net.posts.map((p) => (Array.isArray(p.body) ? p.body.length : 1));
    assert.ok(sizes.every((n) => n <= 64), `${sizes}`);
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      70,
    );
    c.close();
  });

  it("an `event: close` is a close with its code and reason (the catalogue's advice)", async () => {
    const c = client({ transport: "sse" });
    c.connect();
    await settle();
    net.last.hello();
    await settle();
    net.last.close(1012, "server restarting; reconnect_within_ms=3000");
    await settle();
    assert.equal(c.status.state, "reconnecting");
    assert.equal((c.status as { closeCode: number }).closeCode, 1012);
    assert.equal((c.status as { retryAt: number }).retryAt, 2999);
    clock.advance(3000);
    await settle();
    assert.equal(net.streams.length, 2);
    net.last.close(1000, "");
    await settle();
    assert.equal(c.status.state, "stopped");
  });

  it("404 unknown_connection on a POST drops the stream and reconnects", async () => {
    const c = client({ transport: "sse" });
    record(c);
    c.connect();
    await settle();
    net.answer = () => ({ status: 404, body: '{"error":"unknown_connection","message":"gone"}' });
    net.last.hello();
    await settle();
    assert.equal(c.status.state, "reconnecting");
    assert.equal((c.status as { closeCode: number }).closeCode, 1006);
    assert.ok(net.streams[0]?.aborted || net.streams[0]?.cancelled);
    net.answer = () => ({ status: 202 });
    clock.advance(100);
    await settle();
    assert.equal(net.streams.length, 2);
    net.last.hello("c2");
    await settle();
    assert.equal(c.status.state, "live");
    assert.equal(net.posts.at(-1)?.url, "http://test/api/realtime/sse/c2");
    c.close();
  });

  it("a network error on a POST, or the stream ending, reconnects", async () => {
    const c = client({ transport: "sse" });
    c.connect();
    await settle();
    net.last.hello();
    await settle();
    net.answer = () => "network-error";
    c.wake(); // a ping
    await settle();
    assert.equal(c.status.state, "reconnecting");
    net.answer = () => ({ status: 202 });
    clock.advance(200);
    await settle();
    net.last.hello();
    await settle();
    assert.equal(c.status.state, "live");
    net.last.end();
    await settle();
    assert.equal((c.status as ConnectionStatus).state, "reconnecting");
    c.close();
  });

  it("another 4xx is a protocol error of its frames: onError, the request fails, the connection goes on", async () => {
    const c = new RealtimeClient<Topics, { "x.y": { params: object; result: object; errors: never } }>({
      url: "ws://test/api/realtime",
      clock,
      fetch: net.fetch,
      transport: "sse",
      page: null,
      retries: 0,
    });
    const errors: unknown[] = [];
    c.onError((e) => errors.push(e));
    c.connect();
    await settle();
    net.last.hello();
    await settle();
    net.answer = () => ({ status: 400, body: '{"error":"invalid_message","message":"bad frame"}' });
    c.wake();
    const call = c.request("x.y", {}).then(
      () => "resolved",
      (e: { code: string }) => e.code,
    );
    await settle();
    assert.equal(await call, "invalid_message");
    assert.deepEqual(errors, [{ type: "error", code: "invalid_message", message: "bad frame", id: "ping-1" }]);
    assert.equal(c.status.state, "live");
    assert.equal(net.posts.length, 1); // the ping and the request in one POST
    c.close();
  });
});

describe("transport: auto", () => {
  it("falls back to SSE after sseAfterFailures failed upgrades, and reports the transport", async () => {
    const c = client();
    const statuses: ConnectionStatus[] = [];
    c.onStatus((s) => statuses.push(s));
    const seen = record(c);
    c.connect();
    sockets.last.drop(1006); // refused upgrade
    clock.advance(100);
    assert.equal(sockets.sockets.length, 2);
    clock.advance(2000); // a handshake that never opens
    assert.equal(net.streams.length, 0);
    clock.advance(400);
    await settle();
    assert.equal(sockets.sockets.length, 2);
    assert.equal(net.streams.length, 1);
    net.last.hello();
    await settle();
    net.last.frame(snapshot(1));
    await settle();
    assert.deepEqual(seen, ["snapshot 1 0"]);
    assert.deepEqual(transports(statuses).filter((s) => s !== "reconnecting"), [
      "idle",
      "connecting:websocket",
      "connecting:websocket",
      "connecting:sse",
      "live:sse",
    ]);
    c.close();
  });

  it("a WebSocket that reached hello resets the count; other codes do not count", async () => {
    const c = client({ sseAfterFailures: 2 });
    c.connect();
    sockets.last.drop(1006);
    clock.advance(100);
    sockets.last.hello();
    sockets.last.drop(1006); // after hello: a drop, not a refused upgrade
    clock.advance(100);
    sockets.last.drop(1011); // a server error
    clock.advance(1000);
    sockets.last.drop(1006);
    clock.advance(1000);
    assert.equal(net.streams.length, 0);
    assert.equal(c.status.state, "connecting");
    assert.equal((c.status as { transport: string }).transport, "websocket");
    c.close();
  });

  it("on SSE, probes a WebSocket later with backoff; one that reaches hello takes over and resyncs", async () => {
    // No idle pings: the fake stream answers none, and timers here run without awaits.
    const c = client({ sseAfterFailures: 1, wsRetry: { initialMs: 10_000, maxMs: 25_000 }, idlePingMs: 1e9 });
    const statuses: ConnectionStatus[] = [];
    c.onStatus((s) => statuses.push(s));
    const seen = record(c);
    c.connect();
    sockets.last.drop(1006);
    clock.advance(100);
    await settle();
    const stream = net.last;
    stream.hello("sse-1");
    await settle();
    stream.frame(snapshot(4));
    await settle();
    assert.equal(sockets.sockets.length, 1);
    clock.advance(10_000); // first probe
    assert.equal(sockets.sockets.length, 2);
    sockets.last.drop(1006);
    clock.advance(19_999);
    assert.equal(sockets.sockets.length, 2);
    clock.advance(1); // 20 s later
    assert.equal(sockets.sockets.length, 3);
    clock.advance(2000); // a probe that never opens: connectTimeoutMs
    assert.ok(sockets.sockets[2]?.closedByClient !== null);
    clock.advance(24_999); // capped at 25 s
    assert.equal(sockets.sockets.length, 3);
    clock.advance(1);
    assert.equal(sockets.sockets.length, 4);
    assert.equal(net.streams.length, 1);
    assert.equal(c.status.state, "live"); // on SSE all along
    const probe = sockets.last;
    probe.hello("ws-1");
    await settle();
    assert.ok(stream.aborted || stream.cancelled); // the stream went first
    assert.equal(c.status.state, "live");
    assert.equal((c.status as { transport: string }).transport, "websocket");
    assert.equal((c.status as { connectionId: string }).connectionId, "ws-1");
    assert.deepEqual(probe.sent, [{ type: "subscribe", topics: ["sessions.state"] }]);
    probe.receive(snapshot(9));
    probe.receive(event(10));
    stream.frame(event(5)); // the old stream is ignored
    await settle();
    assert.deepEqual(seen, ["snapshot 4 0", "snapshot 9 0", "event 10 remove"]);
    assert.deepEqual(transports(statuses).filter((s) => s.startsWith("live")), ["live:sse", "live:websocket"]);
    // Back on the WebSocket: a later upgrade failure starts the count again.
    probe.drop(1006);
    clock.advance(1000);
    assert.equal(sockets.sockets.length, 5);
    c.close();
  });

  it("a probe is abandoned when the stream goes, and never runs with transport websocket", async () => {
    const c = client({ sseAfterFailures: 1, wsRetry: { initialMs: 1000 }, idlePingMs: 1e9 });
    c.connect();
    sockets.last.drop(1006);
    clock.advance(100);
    await settle();
    net.last.hello();
    await settle();
    clock.advance(1000);
    const probe = sockets.last;
    assert.equal(sockets.sockets.length, 2);
    net.last.close(1012, "restart; reconnect_within_ms=10");
    await settle();
    assert.deepEqual(probe.closedByClient, { code: 1000, reason: "not needed" });
    probe.hello(); // too late: ignored
    assert.equal((c.status as { state: string }).state, "reconnecting");
    c.close();

    const streams = net.streams.length;
    const before = sockets.sockets.length;
    const ws = client({ transport: "websocket", sseAfterFailures: 1 });
    ws.connect();
    for (let i = 0; i < 5; i += 1) {
      sockets.last.drop(1006);
      clock.advance(2000);
    }
    await settle();
    assert.equal(net.streams.length, streams);
    assert.equal(sockets.sockets.length, before + 6); // the first and five retries, all WebSockets
    assert.equal((ws.status as { transport: string }).transport, "websocket");
    ws.close();
  });
});
