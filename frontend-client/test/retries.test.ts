// request()'s resends (retries.ts) with fake sockets and a manual clock: a call whose
// outcome is unknown (disconnected, request_timeout, the server's unavailable or
// timeout) is sent again with the same idempotency key once live, at most `retries`
// times; everything else fails at once, as before.
import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import type { Methods, Session, Topics } from "@aiohttp-realtime/demo-types";
import { type ClientOptions, RealtimeClient, RequestError, type ResponseFrame } from "../src/index.js";
import { ManualClock, SocketFactory } from "./fakes.js";

const T = "2026-01-01T00:00:00Z";
const session = (id: string): Session => ({ id, title: id, state: "idle", created_at: T, updated_at: T });
/** The delays with random() = 0.999999 and backoff { baseMs: 100 }: the first is 99 ms. */
const FIRST_DELAY = 100;

let clock: ManualClock;
let sockets: SocketFactory;

function live(options: ClientOptions = {}): RealtimeClient<Topics, Methods> {
  const c = new RealtimeClient<Topics, Methods>({
    url: "ws://test/api/realtime",
    clock,
    WebSocket: sockets.WebSocket,
    transport: "websocket", // the WebSocket's own behaviour: never SSE (sse.test.ts)
    random: () => 0.999999,
    backoff: { baseMs: 100, capMs: 1000 },
    idlePingMs: 60_000,
    requestTimeoutMs: 5000,
    ...options,
  });
  c.connect();
  sockets.last.hello();
  return c;
}

/** How a promise settled, readable once `flush()` ran. */
function watch<T>(promise: Promise<T>): { state: "pending" | "resolved" | "rejected"; value?: T; error?: unknown } {
  const seen: { state: "pending" | "resolved" | "rejected"; value?: T; error?: unknown } = { state: "pending" };
  promise.then(
    (value) => Object.assign(seen, { state: "resolved", value }),
    (error: unknown) => Object.assign(seen, { state: "rejected", error }),
  );
  return seen;
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** Every request frame sent, on every socket, oldest first. */
function sent(): Record<string, unknown>[] {
  return sockets.sockets.flatMap((socket) => socket.sentOf("request"));
}

function last(): Record<string, unknown> {
  const frame = sent().at(-1);
  assert.ok(frame !== undefined, "nothing sent");
  return frame;
}

function respond(frame: Record<string, unknown>, body: Omit<ResponseFrame, "type" | "id">): void {
  sockets.last.receive({ type: "response", id: String(frame.id), ...body });
}

function code(call: { error?: unknown }): string {
  assert.ok(call.error instanceof RequestError, `not a RequestError: ${String(call.error)}`);
  return call.error.code;
}

/** Let the failure reach the resend loop, then pass the backoff delay before the resend. */
async function pastTheDelay(ms = FIRST_DELAY): Promise<void> {
  await flush();
  clock.advance(ms);
  await flush();
}

beforeEach(() => {
  clock = new ManualClock();
  sockets = new SocketFactory();
});

describe("resending a request whose outcome is unknown", () => {
  it("resends a call cut off by a disconnect with the same key once live again, and resolves with its answer", async () => {
    const c = live();
    const call = watch(c.request("sessions.create", { title: "Deploy" }));
    const first = last();
    sockets.last.drop(1006);
    await pastTheDelay(); // the reconnect's delay and the resend's
    assert.equal(sent().length, 1, "not sent while not live");
    sockets.last.hello("c2");
    await flush();
    const again = last();
    assert.equal(sent().length, 2);
    assert.deepEqual({ ...again, id: first.id }, first, "the same request, the same key");
    assert.notEqual(again.id, first.id, "a new id: a late answer to the first is not taken for it");
    assert.equal(sockets.sockets.at(-1)?.sentOf("request").length, 1, "on the new connection");
    respond(again, { result: session("s-1") });
    await flush();
    assert.deepEqual(call, { state: "resolved", value: session("s-1") });
  });

  it("resends after request_timeout on the same connection, ignoring a late answer to the first", async () => {
    const c = live();
    const call = watch(c.request("sessions.remove", { id: "s-1" }));
    const first = last();
    clock.advance(5000);
    await pastTheDelay();
    const again = last();
    assert.equal(again.idempotency_key, first.idempotency_key);
    assert.notEqual(again.id, first.id);
    respond(first, { result: { id: "late" } });
    await flush();
    assert.equal(call.state, "pending");
    respond(again, { result: { id: "s-1" } });
    await flush();
    assert.deepEqual(call, { state: "resolved", value: { id: "s-1" } });
    assert.equal(c.status.state, "live");
  });

  it("resends after the server's unavailable and timeout, and never after its other codes", async () => {
    const c = live();
    const call = watch(c.request("sessions.create", { title: "x" }));
    respond(last(), { error: { code: "unavailable", message: "Redis is down" } });
    await pastTheDelay();
    respond(last(), { error: { code: "timeout", message: "too slow" } });
    await pastTheDelay(200); // the second resend's window is twice the first's
    const keys = new Set(sent().map((f) => f.idempotency_key));
    assert.equal(sent().length, 3);
    assert.equal(keys.size, 1);
    respond(last(), { result: session("s-1") });
    await flush();
    assert.equal(call.state, "resolved");
    for (const final of ["not_found", "internal_error", "idempotency_key_reused", "forbidden", "invalid_params"]) {
      const before = sent().length;
      const other = watch(c.request("sessions.update", { id: "s-1", state: "done" }));
      respond(last(), { error: { code: final, message: "no" } });
      await pastTheDelay(1000);
      assert.equal(code(other), final);
      assert.equal(sent().length, before + 1, `${final} is not resent`);
    }
  });

  it("gives up after `retries` resends with the last code, each send with the same key", async () => {
    const c = live({ retries: 1 });
    const call = watch(c.request("sessions.create", { title: "x" }));
    respond(last(), { error: { code: "unavailable", message: "down" } });
    await pastTheDelay();
    respond(last(), { error: { code: "timeout", message: "slow" } });
    await pastTheDelay(1000);
    assert.equal(code(call), "timeout");
    assert.equal(sent().length, 2);
    const once = watch(c.request("sessions.create", { title: "y" }, { retries: 0 }));
    respond(last(), { error: { code: "unavailable", message: "down" } });
    await pastTheDelay(1000);
    assert.equal(code(once), "unavailable");
    assert.equal(sent().length, 3, "retries: 0 sends once");
  });

  it("resends twice by default", async () => {
    const c = live({ retries: undefined });
    const call = watch(c.request("sessions.create", { title: "x" }));
    for (const delay of [100, 200, 400]) {
      respond(last(), { error: { code: "unavailable", message: "down" } });
      await pastTheDelay(delay);
    }
    assert.equal(code(call), "unavailable");
    assert.equal(sent().length, 3);
  });

  it("fails with disconnected at once when the client stops, and sends nothing more", async () => {
    const c = live();
    const closed = watch(c.request("sessions.create", { title: "x" }));
    c.close();
    await flush();
    assert.equal(code(closed), "disconnected");
    const stopped = live();
    const byServer = watch(stopped.request("sessions.create", { title: "y" }));
    sockets.last.drop(1000); // advice "never": stopped
    await pastTheDelay(10_000);
    assert.equal(code(byServer), "disconnected");
    assert.equal(sent().length, 2);
    assert.equal(clock.pending(), 0, "no timer left behind");
  });

  it("fails with disconnected when the client is not live again within the call's timeout", async () => {
    const c = live();
    const call = watch(c.request("sessions.create", { title: "x" }, { timeout: 1000 }));
    sockets.last.drop(1006);
    await pastTheDelay(); // reconnecting: a socket, no hello; the wait began after 99 ms
    clock.advance(998);
    await flush();
    assert.equal(call.state, "pending");
    clock.advance(1); // 1000 ms of waiting
    await flush();
    assert.equal(code(call), "disconnected");
    sockets.last.hello("c2");
    await flush();
    assert.equal(sent().length, 1, "nothing sent after giving up");
    assert.equal(c.status.state, "live");
  });

  it("fails with aborted when the signal aborts while waiting to resend", async () => {
    const c = live();
    const controller = new AbortController();
    const call = watch(c.request("sessions.create", { title: "x" }, { signal: controller.signal }));
    sockets.last.drop(1006);
    await pastTheDelay();
    controller.abort();
    await flush();
    assert.equal(code(call), "aborted");
    sockets.last.hello("c2");
    await flush();
    assert.equal(sent().length, 1);
  });
});

describe("idempotency keys", () => {
  it("sends a fresh key per call, or the caller's own", () => {
    const c = live();
    watch(c.request("sessions.create", { title: "a" }));
    watch(c.request("sessions.create", { title: "a" }));
    watch(c.request("sessions.create", { title: "a" }, { idempotencyKey: "my-own-key" }));
    const keys = sent().map((f) => f.idempotency_key);
    assert.equal(new Set(keys).size, 3);
    assert.equal(keys[2], "my-own-key");
    c.close();
  });

  it("makes UUIDs from getRandomValues where randomUUID is missing (plain http pages)", () => {
    const real = Object.getOwnPropertyDescriptor(globalThis, "crypto");
    assert.ok(real !== undefined);
    const fill = (a: Uint8Array): Uint8Array => a.fill(0xff);
    Object.defineProperty(globalThis, "crypto", { value: { getRandomValues: fill }, configurable: true });
    try {
      const c = live();
      watch(c.request("sessions.create", { title: "a" }));
      assert.equal(last().idempotency_key, "ffffffff-ffff-4fff-bfff-ffffffffffff");
      c.close();
    } finally {
      Object.defineProperty(globalThis, "crypto", real);
    }
  });
});
