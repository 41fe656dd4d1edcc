// request(method, params) with fake sockets and a manual clock: the frame sent, the
// response matched by id, every way a request fails, and what is never done (queueing
// before a connection; resending after a reconnect with `retries: 0`, the default
// here: resends are in retries.test.ts).
import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import type { Methods, Session, Topics } from "@aiohttp-realtime/demo-types";
import {
  ClientRequestFailure,
  type ClientOptions,
  ErrorCode,
  isRequestError,
  RealtimeClient,
  RequestError,
  type RequestErrorOf,
  type ResponseFrame,
} from "../src/index.js";
import { ManualClock, SocketFactory } from "./fakes.js";

const T = "2026-01-01T00:00:00Z";
const session = (id: string, title = id): Session => ({ id, title, state: "idle", created_at: T, updated_at: T });

let clock: ManualClock;
let sockets: SocketFactory;

function client(options: ClientOptions = {}): RealtimeClient<Topics, Methods> {
  return new RealtimeClient<Topics, Methods>({
    url: "ws://test/api/realtime",
    clock,
    WebSocket: sockets.WebSocket,
    transport: "websocket", // the WebSocket's own behaviour: never SSE (sse.test.ts)
    random: () => 0.999999,
    backoff: { baseMs: 100, capMs: 1000 },
    idlePingMs: 60_000,
    connectTimeoutMs: 2000,
    requestTimeoutMs: 5000,
    retries: 0,
    ...options,
  });
}

/** A client with a live connection. */
function live(options: ClientOptions = {}): RealtimeClient<Topics, Methods> {
  const c = client(options);
  c.connect();
  sockets.last.hello();
  return c;
}

/** How a promise settled, readable synchronously once `flush()` ran. */
function watch<T>(promise: Promise<T>): { state: "pending" | "resolved" | "rejected"; value?: T; error?: unknown } {
  const seen: { state: "pending" | "resolved" | "rejected"; value?: T; error?: unknown } = { state: "pending" };
  promise.then(
    (value) => Object.assign(seen, { state: "resolved", value }),
    (error: unknown) => Object.assign(seen, { state: "rejected", error }),
  );
  return seen;
}

/** Let promise reactions run. */
const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function requests(): Record<string, unknown>[] {
  return sockets.last.sentOf("request");
}

function lastRequestId(): string {
  const id = requests().at(-1)?.id;
  assert.equal(typeof id, "string");
  return id as string;
}

function respond(id: string, body: Omit<ResponseFrame, "type" | "id">): void {
  sockets.last.receive({ type: "response", id, ...body });
}

/** The RequestError a promise rejected with (fails the test otherwise). */
async function failure(promise: Promise<unknown>): Promise<RequestError> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof RequestError, `not a RequestError: ${String(error)}`);
    return error;
  }
  assert.fail("the request did not fail");
}

beforeEach(() => {
  clock = new ManualClock();
  sockets = new SocketFactory();
});

describe("requests", () => {
  it("sends a request frame and resolves with the response's result", async () => {
    const c = live();
    const created = c.request("sessions.create", { title: "Deploy" });
    const [frame] = requests();
    const key = frame?.idempotency_key;
    const expected = { type: "request", id: frame?.id, method: "sessions.create", params: { title: "Deploy" } };
    assert.deepEqual(frame, { ...expected, idempotency_key: key });
    assert.ok(typeof frame?.id === "string" && frame.id.length > 0 && frame.id.length <= 128);
    assert.match(String(key), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, "a UUID");
    respond(frame.id, { result: session("s-1", "Deploy") });
    const result: Session = await created;
    assert.deepEqual(result, session("s-1", "Deploy"));
    assert.equal(clock.pending(), 1, "only the idle-ping timer is left: the request's timeout is cleared");
  });

  it("resolves after the events the method published have reached the topic's handlers", async () => {
    const c = live();
    const titles: string[] = [];
    c.subscribe("sessions.state", {
      onSnapshot: (snapshot) => titles.splice(0, titles.length, ...snapshot.sessions.map((s) => s.title)),
      onEvent: (event) => event.op === "upsert" && titles.push(event.session.title),
    });
    sockets.last.receive({ type: "snapshot", topic: "sessions.state", seq: 1, payload: { sessions: [] } });
    const created = c.request("sessions.create", { title: "Deploy" });
    // The server's order: the event, then the response.
    const s = session("s-1", "Deploy");
    sockets.last.receive({ type: "event", topic: "sessions.state", seq: 2, payload: { op: "upsert", session: s } });
    respond(lastRequestId(), { result: s });
    const result = await created;
    assert.ok(titles.includes(result.title), "the state shows the change when request() resolves");
  });

  it("matches responses to requests by id, whatever their order", async () => {
    const c = live();
    const first = c.request("sessions.create", { title: "one" });
    const second = c.request("sessions.remove", { id: "s-9" });
    const third = c.request("messages.send", { session_id: "s-1", role: "user", text: "hi" });
    const ids = requests().map((f) => f.id as string);
    assert.equal(new Set(ids).size, 3, "a fresh id per request");
    const [a, b, d] = ids as [string, string, string];
    respond(d, { error: { code: "not_found", message: "no such session" } });
    respond(b, { result: { id: "s-9" } });
    respond(a, { result: session("s-1", "one") });
    assert.deepEqual(await second, { id: "s-9" });
    assert.equal((await first).title, "one");
    assert.equal((await failure(third)).code, "not_found");
  });

  it("rejects with the server's code, message and details", async () => {
    const c = live();
    const call = c.request("sessions.create", { title: "" });
    const details = [{ loc: ["title"], msg: "String should have at least 1 character", type: "string_too_short" }];
    respond(lastRequestId(), { error: { code: "invalid_params", message: "invalid params", details } });
    const error = await failure(call);
    assert.equal(error.code, ErrorCode.INVALID_PARAMS);
    assert.equal(error.message, "invalid params");
    assert.equal(error.method, "sessions.create");
    assert.deepEqual(error.details, details);
    assert.equal(error.name, "RequestError");
    assert.ok(error instanceof Error);
    assert.ok(isRequestError(error) && isRequestError(error, "sessions.create"));
    assert.ok(!isRequestError(error, "sessions.remove") && !isRequestError(new Error("x")));
  });

  it("leaves details absent when the server sent none", async () => {
    const c = live();
    const call = c.request("sessions.remove", { id: "s-nope" });
    respond(lastRequestId(), { error: { code: "not_found", message: "no such session" } });
    const error = await failure(call);
    assert.equal(error.code, "not_found");
    assert.equal("details" in error, false);
  });

  it("rejects with an error frame that echoes its id (a request the server could not read)", async () => {
    const c = live();
    const errors: unknown[] = [];
    c.onError((e) => errors.push(e));
    const call = c.request("sessions.create", { title: "x" });
    sockets.last.receive({ type: "error", code: "invalid_json", message: "nested too deep", id: lastRequestId() });
    const error = await failure(call);
    assert.equal(error.code, ErrorCode.INVALID_JSON);
    assert.equal(error.method, "sessions.create");
    sockets.last.receive({ type: "error", code: "invalid_json", message: "m", id: "not-a-request" });
    assert.equal(errors.length, 1); // an error frame of no request still goes to onError
  });

  it("ignores a response whose id is not pending", async () => {
    const c = live();
    const call = watch(c.request("sessions.create", { title: "x" }));
    respond("never-sent", { result: session("s-0") });
    respond("never-sent", { error: { code: "internal_error", message: "x" } });
    await flush();
    assert.equal(call.state, "pending");
    respond(lastRequestId(), { result: session("s-1") });
    await flush();
    assert.deepEqual(call, { state: "resolved", value: session("s-1") });
    respond(lastRequestId(), { result: session("s-2") }); // a second answer: ignored
    assert.equal(c.status.state, "live");
  });

  it("narrows the error code by method, the server's codes and the client's", async () => {
    const c = live();
    const call = c.request("sessions.update", { id: "s-1", state: "done" });
    respond(lastRequestId(), { error: { code: "quota_exceeded", message: "too many sessions" } });
    try {
      await call;
      assert.fail("resolved");
    } catch (error) {
      assert.ok(c.isRequestError(error, "sessions.update"));
      const handled = explain(error);
      assert.equal(handled, "over quota: too many sessions");
    }
  });
});

/** An exhaustive switch over what `sessions.update` may reject with: compiles only
 * while the method's declared codes, the catalogue and the client's codes are all
 * literal unions. */
function explain(error: RequestErrorOf<Methods, "sessions.update">): string {
  switch (error.code) {
    case "not_found":
      return "gone";
    case "quota_exceeded":
      return `over quota: ${error.message}`;
    case ClientRequestFailure.DISCONNECTED:
    case ClientRequestFailure.NOT_CONNECTED:
    case ClientRequestFailure.REQUEST_TIMEOUT:
    case ClientRequestFailure.ABORTED:
      return "try again";
    default: {
      const code: ErrorCode = error.code; // everything else is the catalogue's
      return code;
    }
  }
}

describe("requests and the connection", () => {
  it("rejects at once with not_connected, sending nothing, while not live", async () => {
    const c = client();
    assert.equal((await failure(c.request("sessions.create", { title: "idle" }))).code, "not_connected");
    c.connect(); // socket open, no hello yet
    assert.equal((await failure(c.request("sessions.create", { title: "connecting" }))).code, "not_connected");
    sockets.last.drop(1006);
    assert.equal(c.status.state, "reconnecting");
    assert.equal((await failure(c.request("sessions.create", { title: "reconnecting" }))).code, "not_connected");
    clock.advance(100);
    sockets.last.hello("c2");
    assert.deepEqual(requests(), [], "nothing was queued for the next connection");
    c.close();
    assert.equal((await failure(c.request("sessions.create", { title: "stopped" }))).code, "not_connected");
  });

  it("rejects pending requests with disconnected when the socket drops, and never resends them", async () => {
    const c = live();
    const first = watch(c.request("sessions.create", { title: "one" }));
    const second = watch(c.request("sessions.remove", { id: "s-1" }));
    const oldIds = requests().map((f) => f.id);
    sockets.last.drop(1006);
    await flush();
    for (const call of [first, second]) {
      assert.equal(call.state, "rejected");
      assert.ok(call.error instanceof RequestError && call.error.code === ClientRequestFailure.DISCONNECTED);
    }
    assert.ok(second.error instanceof RequestError && second.error.method === "sessions.remove");
    clock.advance(100);
    sockets.last.hello("c2");
    assert.deepEqual(requests(), [], "not resent after the reconnect");
    // A response to an old id on the new connection settles nothing.
    respond(String(oldIds[0]), { result: session("s-1") });
    // New requests get ids never used before.
    const third = watch(c.request("sessions.create", { title: "three" }));
    assert.ok(!oldIds.includes(lastRequestId()));
    respond(lastRequestId(), { result: session("s-3") });
    await flush();
    assert.equal(third.state, "resolved");
  });

  it("rejects pending requests with disconnected on close()", async () => {
    const c = live();
    const call = c.request("sessions.create", { title: "x" });
    c.close();
    const error = await failure(call);
    assert.equal(error.code, "disconnected");
    assert.equal(clock.pending(), 0, "no timer left behind");
  });

  it("rejects pending requests when the connection is found dead (no pong)", async () => {
    const c = live({ idlePingMs: 1000, pongTimeoutMs: 500 });
    const call = watch(c.request("sessions.create", { title: "x" }));
    clock.advance(1500);
    await flush();
    assert.ok(call.error instanceof RequestError && call.error.code === "disconnected");
  });

  it("fails with disconnected when the socket throws on send", async () => {
    const c = live();
    sockets.last.send = () => {
      throw new Error("socket closing");
    };
    const error = await failure(c.request("sessions.create", { title: "x" }));
    assert.equal(error.code, "disconnected");
    assert.ok(error.cause instanceof Error && error.cause.message === "socket closing");
  });

  it("rejects params that are not JSON with JSON.stringify's error, sending nothing", async () => {
    const c = live();
    const bad = { title: 1n } as unknown as { title: string };
    await assert.rejects(c.request("sessions.create", bad), TypeError);
    assert.deepEqual(requests(), []);
  });
});

describe("request timeouts", () => {
  it("rejects with request_timeout after requestTimeoutMs, and ignores the late response", async () => {
    const c = live();
    const call = watch(c.request("sessions.create", { title: "slow" }));
    const id = lastRequestId();
    clock.advance(4999);
    await flush();
    assert.equal(call.state, "pending");
    clock.advance(1);
    await flush();
    assert.ok(call.error instanceof RequestError);
    assert.equal(call.error.code, ClientRequestFailure.REQUEST_TIMEOUT);
    assert.notEqual(call.error.code, ErrorCode.TIMEOUT, "not the server's timeout");
    respond(id, { result: session("s-late") });
    await flush();
    assert.equal(call.state, "rejected");
    assert.equal(c.status.state, "live", "a timeout does not drop the connection");
  });

  it("takes a call's own timeout over the client's", async () => {
    const c = live({ idlePingMs: 10_000_000 }); // no ping (unanswered here) in the hour below
    const short = watch(c.request("sessions.create", { title: "a" }, { timeout: 50 }));
    const long = watch(c.request("sessions.create", { title: "b" }, { timeout: 20_000 }));
    const none = watch(c.request("sessions.create", { title: "c" }, { timeout: Number.POSITIVE_INFINITY }));
    clock.advance(50);
    await flush();
    assert.equal(short.state, "rejected");
    clock.advance(10_000);
    await flush();
    assert.equal(long.state, "pending", "past requestTimeoutMs, within its own");
    clock.advance(10_000);
    await flush();
    assert.equal(long.state, "rejected");
    clock.advance(3_600_000);
    await flush();
    assert.equal(none.state, "pending", "Infinity: no client-side timeout");
  });

  it("defaults to 30 s", async () => {
    const c = client({ requestTimeoutMs: undefined });
    c.connect();
    sockets.last.hello();
    const call = watch(c.request("sessions.create", { title: "x" }));
    clock.advance(29_999);
    await flush();
    assert.equal(call.state, "pending");
    clock.advance(1);
    await flush();
    assert.ok(call.error instanceof RequestError && call.error.code === "request_timeout");
  });
});

describe("aborting requests", () => {
  it("rejects at once with aborted, sending nothing, when the signal already aborted", async () => {
    const c = live();
    const controller = new AbortController();
    controller.abort("changed my mind");
    const error = await failure(c.request("sessions.create", { title: "x" }, { signal: controller.signal }));
    assert.equal(error.code, "aborted");
    assert.equal(error.cause, "changed my mind");
    assert.deepEqual(requests(), []);
    // Aborted wins over not connected: the caller's own decision comes first.
    const idle = client();
    const notSent = await failure(idle.request("sessions.create", { title: "x" }, { signal: controller.signal }));
    assert.equal(notSent.code, "aborted");
  });

  it("rejects a pending request with aborted when the signal aborts, and ignores its response", async () => {
    const c = live();
    const controller = new AbortController();
    const call = watch(c.request("sessions.create", { title: "x" }, { signal: controller.signal }));
    const id = lastRequestId();
    controller.abort();
    await flush();
    assert.ok(call.error instanceof RequestError && call.error.code === ClientRequestFailure.ABORTED);
    assert.ok(call.error.cause instanceof Error && call.error.cause.name === "AbortError");
    respond(id, { result: session("s-1") });
    await flush();
    assert.equal(call.state, "rejected");
    assert.equal(clock.pending(), 1, "its timeout was cleared (the idle ping's is left)");
  });

  it("stops listening to the signal once the request settled", async () => {
    const c = live();
    const listeners = new Set<() => void>();
    const signal = {
      aborted: false,
      addEventListener: (_: "abort", fn: () => void) => void listeners.add(fn),
      removeEventListener: (_: "abort", fn: () => void) => void listeners.delete(fn),
    };
    const call = c.request("sessions.create", { title: "x" }, { signal });
    assert.equal(listeners.size, 1);
    respond(lastRequestId(), { result: session("s-1") });
    await call;
    assert.equal(listeners.size, 0);
    const dropped = watch(c.request("sessions.create", { title: "y" }, { signal }));
    sockets.last.drop(1006);
    await flush();
    assert.equal(dropped.state, "rejected");
    assert.equal(listeners.size, 0);
  });
});
