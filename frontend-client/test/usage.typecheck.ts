// Type-checked only (never run): docs/client.md's and README.md's examples, and what
// must not compile. The client is generic over a topic map; the demo app's generated
// one (`Topics`, from the workspace package) stands in for any app's.
import type {
  ActivityEvent,
  ActivitySnapshot,
  SessionsSnapshot,
  SessionUpsert,
  Topics,
} from "@aiohttp-realtime/demo-types";
import WebSocket from "ws";
import {
  CloseCode,
  ErrorCode,
  type ErrorFrame,
  RealtimeClient,
  type Reconnect,
  reconnectAdvice,
  type TopicHandlers,
  TokenError,
  type TopicMap,
  type WebSocketConstructor,
} from "../src/index.js";

type Assert<T extends true> = T;
/** The generated topic map (a template-literal key for a pattern) is a TopicMap. */
export type GeneratedTopicsAreATopicMap = Assert<Topics extends TopicMap ? true : false>;
/** The `ws` package's class is a WebSocketConstructor as it is: no cast. */
export type WsIsAWebSocket = Assert<typeof WebSocket extends WebSocketConstructor ? true : false>;

export function usage(url: string): void {
  // Node 20: no global WebSocket, no page to take the URL from.
  const client = new RealtimeClient<Topics>({ url, WebSocket });
  client.onStatus((status) => {
    if (status.state === "reconnecting") void status.retryAt;
    if (status.state === "live") void status.hello.max_topics;
  });
  // A concrete name is typed through the pattern `sessions.activity:${string}`.
  const stop = client.subscribe("sessions.activity:s-1f2e", {
    onSnapshot(snapshot: ActivitySnapshot, seq: number) {
      void snapshot.messages, seq;
    },
    onEvent(event: ActivityEvent) {
      if (event.op === "delta") void event.offset;
    },
    onError(error) {
      void (error.code === ErrorCode.UNKNOWN_TOPIC);
    },
  });
  client.connect();
  stop();

  // Payload types are inferred from the topic name.
  client.subscribe("sessions.state", {
    onSnapshot: (snapshot) => void snapshot.sessions[0]?.title,
    onEvent: (event) => void (event.op === "upsert" ? event.session.id : event.id),
  });
  const id: string = "s-2";
  client.subscribe(`sessions.activity:${id}`, {
    onSnapshot: (snapshot) => void snapshot.session_id,
    onEvent: (event) => void event.op,
  });

  // The runtime catalogues come with the client.
  const advice: Reconnect = reconnectAdvice(CloseCode.GOING_AWAY);
  void advice;
}

// Tokens (docs/client.md, "Authentication"): a string, or a provider asked before every
// connect, synchronous or not; null/undefined for none.
export function tokens(url: string, fetchToken: () => Promise<string | null>): RealtimeClient<Topics>[] {
  const fixed = new RealtimeClient<Topics>({ url, WebSocket, token: "dG9rZW4-base64url_" });
  const rotating = new RealtimeClient<Topics>({ url, WebSocket, token: fetchToken });
  const cached = new RealtimeClient<Topics>({ url, WebSocket, token: () => process.env.TOKEN });
  rotating.onStatus((status) => {
    if (status.state === "reconnecting" && status.error instanceof TokenError) void status.error.message;
  });
  // @ts-expect-error: a token is a string or a function returning one
  void new RealtimeClient<Topics>({ url, WebSocket, token: 42 });
  return [fixed, rotating, cached];
}

/** `ws` options (here a header) through a subclass, which must pass `protocols` on:
 * the client offers `realtime.v1` (and `auth.<token>`) through it. */
export class WithHeaders extends WebSocket {
  constructor(url: string, protocols?: string | string[]) {
    super(url, protocols, { headers: { Authorization: "Bearer dG9rZW4" } });
  }
}
export type WsSubclassFits = Assert<typeof WithHeaders extends WebSocketConstructor ? true : false>;

// Under exactOptionalPropertyTypes an adopter may still pass a possibly-undefined option.
export function optionalOptions(url: string | undefined): RealtimeClient<Topics> {
  return new RealtimeClient<Topics>({ url, WebSocket, backoff: { baseMs: 100 } });
}

// Without a type argument: any topic, unknown payloads.
export function untyped(client: RealtimeClient): void {
  client.subscribe("anything", {
    onSnapshot: (payload) => void (payload satisfies unknown),
    onEvent() {},
  });
}

// Another app's map: handlers typed the same way.
type Prices = { [topic: `prices:${string}`]: { snapshot: { price: number }; event: { op: "price"; price: number } } };
export function otherApp(client: RealtimeClient<Prices>): TopicHandlers<Prices["prices:x"]> {
  const handlers: TopicHandlers<Prices["prices:x"]> = {
    onSnapshot: (quote) => void quote.price.toFixed(),
    onEvent: (event) => void event.price,
  };
  client.subscribe("prices:ACME", handlers);
  // @ts-expect-error: not a topic of this app
  client.subscribe("sessions.state", handlers);
  return handlers;
}

export function misuse(client: RealtimeClient<Topics>, onError: (error: ErrorFrame) => void): void {
  client.subscribe("sessions.state", {
    // @ts-expect-error: sessions.state's snapshot is not an ActivitySnapshot
    onSnapshot(snapshot: ActivitySnapshot) {
      void snapshot;
    },
    onEvent() {},
    onError,
  });
  client.subscribe("sessions.state", {
    onSnapshot() {},
    // @ts-expect-error: the handler must take every sessions.state event, not only upserts
    onEvent(event: SessionUpsert) {
      void event.session;
    },
  });
  // @ts-expect-error: no such topic on the server
  client.subscribe("sessions.nope", { onSnapshot() {}, onEvent() {} });
  // @ts-expect-error: a pattern's parameter is required
  client.subscribe("sessions.activity", { onSnapshot() {}, onEvent() {} });
  client.subscribe("terminals.state", {
    onSnapshot(snapshot) {
      // @ts-expect-error: a terminals snapshot has no sessions
      void (snapshot satisfies SessionsSnapshot);
    },
    onEvent() {},
  });
  // @ts-expect-error: a topic map's entries need both payload types
  void ({} as RealtimeClient<{ "a.b": { snapshot: string } }>);
  // @ts-expect-error: the WebSocket option is a class, not a URL
  void new RealtimeClient<Topics>({ url: "ws://x/", WebSocket: "ws://x/" });
}
