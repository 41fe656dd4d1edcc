// Tokens: what the client offers in the handshake, when it asks the provider, and how
// a provider's failure or an invalid token is reported and retried.
import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import type { Topics } from "@aiohttp-realtime/demo-types";
import { type ClientOptions, type ConnectionStatus, RealtimeClient, SUBPROTOCOL, TokenError } from "../src/index.js";
import { ManualClock, SocketFactory } from "./fakes.js";

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
    connectTimeoutMs: 2000,
    ...options,
  });
}

/** A promise settled by the test. Awaiting it after settling is a barrier: the client's
 * reaction was registered first, so it has run by the time the test resumes. */
function deferred<V>() {
  let resolve: (value: V) => void = () => undefined;
  let reject: (error: unknown) => void = () => undefined;
  const promise = new Promise<V>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject, settled: promise.then(() => undefined, () => undefined) };
}

/** A provider that hands out tok-1, tok-2, …: one per call. */
function rotating() {
  const provider = Object.assign(() => `tok-${++provider.calls}`, { calls: 0 });
  return provider;
}

function reconnecting(status: ConnectionStatus) {
  assert.equal(status.state, "reconnecting");
  if (status.state !== "reconnecting") throw new Error("unreachable");
  return { wait: status.retryAt - clock.now(), closeCode: status.closeCode, error: status.error };
}

beforeEach(() => {
  clock = new ManualClock();
  sockets = new SocketFactory();
});

describe("the subprotocols offered", () => {
  it("offers only realtime.v1 without a token", () => {
    client().connect();
    assert.deepEqual(sockets.last.protocols, [SUBPROTOCOL]);
    assert.equal(SUBPROTOCOL, "realtime.v1");
  });

  it("offers realtime.v1 and auth.<token> for a token string, on every reconnect", () => {
    const c = client({ token: "abc-DEF_123.x~" });
    c.connect();
    sockets.last.hello();
    sockets.last.drop(1006);
    clock.advance(100);
    assert.equal(sockets.sockets.length, 2);
    for (const socket of sockets.sockets) assert.deepEqual(socket.protocols, ["realtime.v1", "auth.abc-DEF_123.x~"]);
    assert.equal(sockets.last.url, "ws://test/api/realtime"); // never in the query string
  });

  it("accepts every RFC 7230 token character (base64url tokens qualify)", () => {
    const tchars = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    client({ token: tchars }).connect();
    assert.deepEqual(sockets.last.protocols, ["realtime.v1", `auth.${tchars}`]);
  });

  it("connects without a token when the provider returns null or undefined", () => {
    const answers = [null, undefined];
    const c = client({ token: () => answers.shift() });
    c.connect();
    sockets.last.drop(1006);
    clock.advance(100);
    assert.deepEqual(sockets.sockets.map((s) => s.protocols), [[SUBPROTOCOL], [SUBPROTOCOL]]);
  });
});

describe("the token provider", () => {
  it("is asked once per connect, including reconnects, so the token can rotate", () => {
    const provider = rotating();
    const c = client({ token: provider, idlePingMs: 60_000, pongTimeoutMs: 500 });
    c.connect();
    assert.equal(provider.calls, 1);
    sockets.last.hello();
    sockets.last.drop(1001); // server restart: reconnect at once
    clock.advance(250);
    sockets.last.drop(1006); // failed before open (e.g. 401): backoff, then ask again
    clock.advance(100);
    sockets.last.hello();
    c.wake(); // live: a ping, not a connect
    assert.equal(provider.calls, 3);
    assert.deepEqual(
      sockets.sockets.map((s) => s.protocols),
      [1, 2, 3].map((n) => ["realtime.v1", `auth.tok-${n}`]),
    );
  });

  it("waits for an asynchronous provider, and connects once however often connect() is called", async () => {
    const token = deferred<string>();
    let calls = 0;
    const c = client({ token: () => (calls++, token.promise) });
    c.connect();
    c.connect();
    assert.equal(c.status.state, "connecting");
    assert.equal(sockets.sockets.length, 0);
    token.resolve("later");
    await token.settled;
    assert.equal(calls, 1);
    assert.equal(sockets.sockets.length, 1);
    assert.deepEqual(sockets.last.protocols, ["realtime.v1", "auth.later"]);
  });

  it("reports a provider that throws in the status and retries with backoff", () => {
    const failure = new Error("no session");
    let calls = 0;
    const c = client({
      token: () => {
        calls += 1;
        if (calls <= 2) throw failure;
        return "ok";
      },
    });
    c.connect();
    assert.deepEqual(reconnecting(c.status), { wait: 99, closeCode: 1006, error: failure });
    clock.advance(99);
    assert.deepEqual(reconnecting(c.status), { wait: 199, closeCode: 1006, error: failure }); // backoff grows
    assert.equal(sockets.sockets.length, 0);
    clock.advance(199);
    assert.equal(calls, 3);
    assert.deepEqual(sockets.last.protocols, ["realtime.v1", "auth.ok"]);
    sockets.last.drop(1006);
    assert.equal(reconnecting(c.status).error, undefined); // a socket's drop has no error
  });

  it("reports a provider that rejects in the status and retries with backoff", async () => {
    const first = deferred<string>();
    const second = Promise.resolve("second");
    const tokens = [first.promise, second];
    const c = client({ token: () => tokens.shift() });
    c.connect();
    const failure = new Error("token endpoint unreachable");
    first.reject(failure);
    await first.settled;
    assert.deepEqual(reconnecting(c.status), { wait: 99, closeCode: 1006, error: failure });
    assert.equal(sockets.sockets.length, 0);
    clock.advance(99);
    await second; // the client's reaction to it was registered first, so it has run
    assert.deepEqual(sockets.last.protocols, ["realtime.v1", "auth.second"]);
  });

  it("gives up on a provider that does not settle within connectTimeoutMs, and ignores its late token", async () => {
    const late = deferred<string>();
    const c = client({ token: () => late.promise, backoff: { baseMs: 10_000, capMs: 10_000 } });
    c.connect();
    clock.advance(2000);
    const { error } = reconnecting(c.status);
    assert.ok(error instanceof TokenError && /did not settle within 2000 ms/.test(error.message));
    late.resolve("too-late");
    await late.settled;
    assert.equal(sockets.sockets.length, 0);
  });

  it("opens nothing when close() is called while the provider is pending", async () => {
    const token = deferred<string>();
    const c = client({ token: () => token.promise });
    c.connect();
    c.close();
    token.resolve("after-close");
    await token.settled;
    assert.equal(sockets.sockets.length, 0);
    assert.equal(c.status.state, "stopped");
    assert.equal(clock.pending(), 0);
  });
});

describe("invalid tokens", () => {
  const bad = ["", "two words", "Bearer abc", "c3RhbmRhcmQ/YmFzZTY0=", "tab\there", "näive", "line\r\nX-Injected: 1", "🔑"];

  it("refuses a token string outside the token set in the constructor, without quoting it", () => {
    for (const token of bad) {
      assert.throws(
        () => client({ token }),
        (error: unknown) =>
          error instanceof TokenError &&
          error.name === "TokenError" &&
          (token === "" || !error.message.includes(token)) &&
          /RFC 7230|empty/.test(error.message),
        JSON.stringify(token),
      );
    }
    assert.equal(sockets.sockets.length, 0);
  });

  it("names where the bad character is", () => {
    assert.throws(() => client({ token: "abc def" }), /at index 3 \(U\+0020\)/);
    assert.throws(() => client({ token: "a🔑b" }), /at index 1 \(U\+1F511\)/);
  });

  it("reports an invalid token from a provider in the status, opens no socket and asks again after backoff", () => {
    const tokens = ["Bearer abc", "abc"];
    const c = client({ token: () => tokens.shift() });
    c.connect();
    const { wait, error } = reconnecting(c.status);
    assert.equal(wait, 99);
    assert.ok(error instanceof TokenError && !error.message.includes("Bearer abc"));
    assert.equal(sockets.sockets.length, 0);
    clock.advance(99);
    assert.deepEqual(sockets.last.protocols, ["realtime.v1", "auth.abc"]);
  });

  it("refuses a provider's non-string token", () => {
    const c = client({ token: () => 42 as unknown as string });
    c.connect();
    const { error } = reconnecting(c.status);
    assert.ok(error instanceof TokenError && /must be a string/.test(error.message));
  });
});
