// The client in Node with the `ws` package as its WebSocket (Node 20 has no global
// one): a real socket to a scripted `ws` server on 127.0.0.1, real timers.
import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { afterEach, describe, it } from "node:test";
import type { Topics } from "@aiohttp-realtime/demo-types";
import WebSocket, { WebSocketServer } from "ws";
import { type ConnectionStatus, RealtimeClient } from "../src/index.js";
import { helloFrame } from "./fakes.js";

const T = "2026-01-01T00:00:00Z";
const cleanups: (() => Promise<void> | void)[] = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const HELLO = helloFrame();

function urlOf(server: WebSocketServer): string {
  const address = server.address();
  assert.ok(typeof address === "object" && address !== null);
  return `ws://127.0.0.1:${address.port}/api/realtime`;
}

/** A server that says hello, then answers a subscribe with a snapshot and two events. */
async function scriptedServer(): Promise<string> {
  const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await once(server, "listening");
  server.on("connection", (ws) => {
    const send = (frame: unknown) => ws.send(JSON.stringify(frame));
    send(HELLO);
    ws.on("message", (data) => {
      const frame = JSON.parse(String(data)) as { type: string; topics?: string[] };
      if (frame.type !== "subscribe") return;
      const session = { id: "s1", title: "one", state: "idle", created_at: T, updated_at: T };
      send({ type: "snapshot", topic: "sessions.state", seq: 4, payload: { sessions: [session] } });
      send({ type: "event", topic: "sessions.state", seq: 5, payload: { op: "remove", id: "s1" } });
      send({ type: "event", topic: "sessions.state", seq: 6, payload: { op: "upsert", session } });
      ws.close(1000, "enough"); // "never": the client stops
    });
  });
  cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return urlOf(server);
}

function waitFor(client: RealtimeClient<Topics>, state: ConnectionStatus["state"]): Promise<ConnectionStatus> {
  return new Promise((resolve) => {
    const off = client.onStatus((status) => {
      if (status.state !== state) return;
      queueMicrotask(off);
      resolve(status);
    });
  });
}

describe("in Node with the ws package", () => {
  it("receives the snapshot, then the events in order, and honours the close code", async () => {
    const url = await scriptedServer();
    const client = new RealtimeClient<Topics>({ url, WebSocket });
    cleanups.push(() => client.close());
    const seen: string[] = [];
    client.subscribe("sessions.state", {
      onSnapshot: (snapshot, seq) => seen.push(`snapshot ${seq} ${snapshot.sessions.length}`),
      onEvent: (event, seq) => seen.push(`event ${seq} ${event.op}`),
    });
    const stopped = waitFor(client, "stopped");
    client.connect();
    assert.deepEqual(await stopped, { state: "stopped", closeCode: 1000, reason: "the server asked not to reconnect" });
    assert.deepEqual(seen, ["snapshot 4 1", "event 5 remove", "event 6 upsert"]);
  });

  it("reads the reconnect window from a real close frame's reason (1012)", async () => {
    const server = new WebSocketServer({ host: "127.0.0.1", port: 0 });
    await once(server, "listening");
    server.on("connection", (ws) => {
      ws.send(JSON.stringify(HELLO));
      ws.close(1012, "server restarting; reconnect_within_ms=8000");
    });
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    // Real timers, a frozen `now`: retryAt is exact.
    const clock = { now: () => 0, setTimeout, clearTimeout: (h: unknown) => clearTimeout(h as number) };
    const client = new RealtimeClient<Topics>({ url: urlOf(server), WebSocket, clock, random: () => 0.5 });
    cleanups.push(() => client.close());
    const reconnecting = waitFor(client, "reconnecting");
    client.connect();
    assert.deepEqual(await reconnecting, { state: "reconnecting", attempt: 0, retryAt: 4000, closeCode: 1012 });
  });

  it("gives up on a handshake that never completes without crashing the process", async () => {
    // A TCP server that accepts and never answers: ws is still CONNECTING when the
    // client's connect timeout closes it, and ws then emits `error` (fatal if unheard).
    const held: Socket[] = [];
    const server: Server = createServer((socket) => void held.push(socket));
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    cleanups.push(() => {
      for (const socket of held) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
    const address = server.address();
    assert.ok(typeof address === "object" && address !== null);
    const client = new RealtimeClient<Topics>({
      url: `ws://127.0.0.1:${address.port}/api/realtime`,
      WebSocket,
      connectTimeoutMs: 50,
      backoff: { baseMs: 10_000, capMs: 10_000 },
    });
    cleanups.push(() => client.close());
    const reconnecting = waitFor(client, "reconnecting");
    client.connect();
    const status = await reconnecting;
    assert.ok(status.state === "reconnecting" && status.closeCode === 1006);
    await new Promise((resolve) => setTimeout(resolve, 50)); // ws's error event comes on a later tick
  });
});

describe("tokens with the ws package", () => {
  /** Like the server: the token is the `auth.` offer, refused with 401 before the
   * upgrade unless it is `good`; only `realtime.v1` is ever selected. */
  async function authServer(offers: string[][]): Promise<string> {
    const server = new WebSocketServer({
      host: "127.0.0.1",
      port: 0,
      verifyClient: (info, done) => {
        const offered = String(info.req.headers["sec-websocket-protocol"] ?? "").split(/, */);
        offers.push(offered);
        if (offered.includes("auth.good")) done(true);
        else done(false, 401, "Unauthorized");
      },
      handleProtocols: (protocols) => (protocols.has("realtime.v1") ? "realtime.v1" : false),
    });
    await once(server, "listening");
    server.on("connection", (ws) => {
      assert.equal(ws.protocol, "realtime.v1");
      ws.send(JSON.stringify({ ...HELLO, auth: true, principal: "alice" }));
    });
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    return urlOf(server);
  }

  it("offers the token as a subprotocol; after a 401 it backs off, asks the provider again, and goes live", async () => {
    const offers: string[][] = [];
    const url = await authServer(offers);
    const tokens = ["stale", "good"];
    let calls = 0;
    const client = new RealtimeClient<Topics>({
      url,
      WebSocket,
      token: async () => tokens[calls++],
      backoff: { baseMs: 20, capMs: 20 },
    });
    cleanups.push(() => client.close());
    const statuses: ConnectionStatus["state"][] = [];
    client.onStatus((status) => statuses.push(status.state));
    const live = waitFor(client, "live");
    client.connect();
    const status = await live;
    assert.ok(status.state === "live" && status.hello.principal === "alice");
    assert.deepEqual(offers, [
      ["realtime.v1", "auth.stale"],
      ["realtime.v1", "auth.good"],
    ]);
    assert.equal(calls, 2);
    // The 401 looks like any failed connect (1006): backoff, then a new token.
    assert.deepEqual(statuses, ["idle", "connecting", "reconnecting", "connecting", "live"]);
  });
});
