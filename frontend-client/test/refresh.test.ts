/** In-band token refresh: `auth` before `hello.auth_expires_in_s` runs out, with a
 * token provider, and a reconnect with a new token after close 4001. */
import assert from "node:assert/strict";
import { beforeEach, describe, it } from "node:test";
import type { Topics } from "@aiohttp-realtime/demo-types";
import { type ClientOptions, type ErrorFrame, RealtimeClient, type Token } from "../src/index.js";
import { helloFrame, ManualClock, SocketFactory } from "./fakes.js";

let clock: ManualClock;
let sockets: SocketFactory;

/** A provider handing out tok-1, tok-2, …; `fail` makes its next calls throw. */
function provider() {
  const p = {
    calls: 0,
    failNext: 0,
    token: (): Token => {
      p.calls += 1;
      if (p.failNext > 0) {
        p.failNext -= 1;
        throw new Error("the token endpoint is down");
      }
      return `tok-${p.calls}`;
    },
  };
  return p;
}

function client(options: ClientOptions = {}): RealtimeClient<Topics> {
  return new RealtimeClient<Topics>({
    url: "ws://test/api/realtime",
    clock,
    WebSocket: sockets.WebSocket,
    transport: "websocket", // the WebSocket's own behaviour: never SSE (sse.test.ts)
    random: () => 0.5, // the first refresh at 80 % of the lifetime
    backoff: { baseMs: 100, capMs: 1000 },
    idlePingMs: 3_600_000, // no pings in the way
    pongTimeoutMs: 500,
    connectTimeoutMs: 2000,
    healthyAfterMs: 5000,
    goingAwayJitterMs: 200,
    page: null,
    ...options,
  });
}

/** Connect and say hello with a credential expiring in `expiresInS` (undefined: never). */
function live(c: RealtimeClient<Topics>, expiresInS: number | undefined, id = "c1"): void {
  c.connect();
  const hello = helloFrame(id);
  sockets.last.receive(expiresInS === undefined ? hello : { ...hello, auth: true, auth_expires_in_s: expiresInS });
}

/** The protocol subprotocols' token of a socket: `auth.<token>`. */
function offered(index: number): string | undefined {
  const protocols = sockets.sockets[index]?.protocols;
  return Array.isArray(protocols) ? protocols[1] : undefined;
}

beforeEach(() => {
  clock = new ManualClock();
  sockets = new SocketFactory();
});

describe("token refresh", () => {
  it("asks the provider at about 80 % of the credential's lifetime and sends `auth`", () => {
    const p = provider();
    const c = client({ token: p.token });
    c.subscribe("sessions.state", { onSnapshot: () => undefined, onEvent: () => undefined });
    live(c, 100);
    assert.equal(p.calls, 1); // the connect's
    clock.advance(79_999);
    assert.equal(sockets.last.sentOf("auth").length, 0);
    clock.advance(1);
    assert.equal(p.calls, 2);
    assert.deepEqual(sockets.last.sentOf("auth"), [{ type: "auth", id: "auth-1", token: "tok-2" }]);
  });

  it("draws the moment within [75 %, 85 %) of the lifetime", () => {
    for (const [random, at] of [
      [0, 75_000],
      [0.999999, 84_999],
    ] as const) {
      clock = new ManualClock();
      sockets = new SocketFactory();
      const c = client({ token: provider().token, random: () => random });
      live(c, 100);
      clock.advance(at - 1);
      assert.equal(sockets.last.sentOf("auth").length, 0, String(random));
      clock.advance(1);
      assert.equal(sockets.last.sentOf("auth").length, 1, String(random));
    }
  });

  it("on `authed`, schedules the next refresh from the new expiry, keeping every subscription", () => {
    const p = provider();
    const c = client({ token: p.token });
    const seen: string[] = [];
    c.subscribe("sessions.state", {
      onSnapshot: (_, seq) => seen.push(`snapshot ${seq}`),
      onEvent: (_, seq) => seen.push(`event ${seq}`),
      onSyncing: () => seen.push("syncing"),
    });
    live(c, 100);
    const socket = sockets.last;
    socket.receive({ type: "snapshot", topic: "sessions.state", seq: 1, payload: { sessions: [] } });
    clock.advance(80_000);
    socket.receive({ type: "authed", id: "auth-1", auth_expires_in_s: 50 });
    socket.receive({ type: "event", topic: "sessions.state", seq: 2, payload: { op: "remove", id: "x" } });
    clock.advance(39_999);
    assert.equal(socket.sentOf("auth").length, 1);
    clock.advance(1); // 80 % of the new 50 s
    assert.deepEqual(socket.sentOf("auth").at(-1), { type: "auth", id: "auth-2", token: "tok-3" });
    socket.receive({ type: "authed", id: "auth-2" }); // no expiry any more: no more refreshes
    clock.advance(3_600_000);
    assert.equal(socket.sentOf("auth").length, 2);
    assert.equal(socket.sentOf("subscribe").length, 1); // never resubscribed
    assert.equal(socket.sentOf("unsubscribe").length, 0);
    assert.deepEqual(seen, ["syncing", "snapshot 1", "event 2"]);
    assert.equal(sockets.sockets.length, 1);
    assert.equal(c.status.state, "live");
  });

  it("retries a provider that fails, twice, halfway to the expiry each time", () => {
    const p = provider();
    const c = client({ token: p.token });
    live(c, 100);
    p.failNext = 2;
    clock.advance(80_000); // fails
    assert.equal(sockets.last.sentOf("auth").length, 0);
    clock.advance(10_000); // halfway through the 20 s left: fails again
    assert.equal(p.calls, 3);
    clock.advance(5_000); // halfway through the 10 s left: works
    assert.equal(p.calls, 4);
    assert.deepEqual(sockets.last.sentOf("auth"), [{ type: "auth", id: "auth-1", token: "tok-4" }]);
  });

  it("retries after the server refuses the token, and tells onError; then leaves it to the expiry", () => {
    const p = provider();
    const c = client({ token: p.token });
    const errors: ErrorFrame[] = [];
    c.onError((e) => errors.push(e));
    live(c, 100);
    const socket = sockets.last;
    const refuse = (id: string, code: ErrorFrame["code"]) => socket.receive({ type: "error", code, message: "no", id });
    clock.advance(80_000);
    refuse("auth-1", "unauthorized");
    clock.advance(10_000);
    refuse("auth-2", "principal_changed");
    clock.advance(5_000);
    refuse("auth-3", "rate_limited");
    clock.advance(4_999); // no fourth attempt
    assert.deepEqual(
      socket.sentOf("auth").map((f) => f.id),
      ["auth-1", "auth-2", "auth-3"],
    );
    assert.deepEqual(
      errors.map((e) => e.code),
      ["unauthorized", "principal_changed", "rate_limited"],
    );
    assert.equal(c.status.state, "live"); // the server closes it at expiry, with 4001
  });

  it("a topic the new token no longer allows goes to its handler, not to the refresh", () => {
    const c = client({ token: provider().token });
    const topicErrors: string[] = [];
    c.subscribe("sessions.state", {
      onSnapshot: () => undefined,
      onEvent: () => undefined,
      onError: (e) => topicErrors.push(`${e.code} ${e.topic}`),
    });
    live(c, 100);
    clock.advance(80_000);
    const socket = sockets.last;
    socket.receive({ type: "error", code: "forbidden", message: "no", id: "auth-1", topic: "sessions.state" });
    socket.receive({ type: "authed", id: "auth-1", auth_expires_in_s: 100 });
    assert.deepEqual(topicErrors, ["forbidden sessions.state"]);
    clock.advance(80_000);
    assert.equal(socket.sentOf("auth").length, 2); // the authed counted: rescheduled
  });

  it("after close 4001 (auth_expired), asks the provider again and reconnects at once", () => {
    const p = provider();
    const c = client({ token: p.token });
    c.subscribe("sessions.state", { onSnapshot: () => undefined, onEvent: () => undefined });
    live(c, 100);
    p.failNext = 3; // every refresh fails
    clock.advance(100_000);
    sockets.last.drop(4001, "auth_expired");
    assert.ok(c.status.state === "reconnecting" && c.status.closeCode === 4001);
    assert.equal(c.status.retryAt - clock.now(), 100); // within goingAwayJitterMs, not a backoff
    const asked = p.calls;
    clock.advance(100);
    assert.equal(p.calls, asked + 1);
    assert.equal(sockets.sockets.length, 2);
    assert.equal(offered(1), `auth.tok-${asked + 1}`);
    sockets.last.hello("c2");
    assert.deepEqual(sockets.last.sentOf("subscribe"), [{ type: "subscribe", topics: ["sessions.state"] }]);
  });

  it("backs off after 4001 on a connection that was not live for long (no reconnect loop)", () => {
    const c = client({ token: provider().token });
    live(c, 1);
    clock.advance(1_000);
    sockets.last.drop(4001, "auth_expired");
    assert.ok(c.status.state === "reconnecting" && c.status.retryAt - clock.now() === 50);
  });

  it("never refreshes a fixed token string, or a credential that does not expire", () => {
    const fixed = client({ token: "static-token" });
    live(fixed, 100);
    clock.advance(3_600_000);
    assert.equal(sockets.last.sentOf("auth").length, 0);

    const p = provider();
    const endless = client({ token: p.token });
    live(endless, undefined);
    clock.advance(3_600_000);
    assert.equal(sockets.last.sentOf("auth").length, 0);
    assert.equal(p.calls, 1);
  });

  it("drops a token that arrives after its connection went, and starts afresh on the next", async () => {
    let calls = 0;
    let resolveLate: (token: string) => void = () => undefined;
    const token = (): Promise<Token> | Token => {
      calls += 1;
      return calls === 2 ? new Promise<string>((r) => (resolveLate = r)) : `tok-${calls}`;
    };
    const c = client({ token });
    live(c, 100);
    clock.advance(80_000); // asks, and waits
    sockets.last.drop(1006);
    clock.advance(100);
    sockets.last.hello("c2"); // no expiry on this one
    resolveLate("late");
    await new Promise((r) => setTimeout(r, 0));
    assert.equal(sockets.sockets[0]?.sentOf("auth").length, 0);
    assert.equal(sockets.sockets[1]?.sentOf("auth").length, 0);
  });
});
