// Type-checked only (never run): docs/client.md's and README.md's examples, and what
// must not compile. The client is generic over a topic map; the demo app's generated
// one (`Topics`, from the workspace package) stands in for any app's.
import type {
  ActivityEvent,
  ActivitySnapshot,
  Message,
  Methods,
  Session,
  SessionsSnapshot,
  SessionUpsert,
  Topics,
} from "@aiohttp-realtime/demo-types";
import WebSocket from "ws";
import {
  type AbortSignalLike,
  ClientRequestFailure,
  CloseCode,
  ErrorCode,
  type ErrorFrame,
  isRequestError,
  type MethodMap,
  RealtimeClient,
  RequestError,
  type RequestErrorOf,
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
/** The generated method map is a MethodMap, as `Topics` is a TopicMap. */
export type GeneratedMethodsAreAMethodMap = Assert<Methods extends MethodMap ? true : false>;
/** Node's AbortSignal is what `request`'s `signal` option takes. */
export type NodeAbortSignalFits = Assert<AbortSignal extends AbortSignalLike ? true : false>;
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

// ---------------------------------------------------------------- requests

type Equals<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;

// docs/client.md's and README.md's "Requests": the method map as the second type
// parameter; a method name picks its params, its result and its error codes.
export async function requests(url: string): Promise<Session> {
  const client = new RealtimeClient<Topics, Methods>({ url, WebSocket, requestTimeoutMs: 15_000 });
  client.connect();
  const session = await client.request("sessions.create", { title: "Deploy" });
  const renamed: Session = await client.request("sessions.update", { id: session.id, title: "Ship" });
  const message: Message = await client.request("messages.send", { session_id: renamed.id, role: "user", text: "hi" });
  const removed = await client.request("sessions.remove", { id: session.id }, { timeout: 5_000 });
  void (removed.id satisfies string), message.text;
  try {
    const controller = new AbortController();
    return await client.request("sessions.create", { title: "x" }, { signal: controller.signal });
  } catch (error) {
    if (client.isRequestError(error, "sessions.create")) {
      switch (error.code) {
        case "quota_exceeded": // the method's own
        case ErrorCode.INVALID_PARAMS: // the catalogue's
        case ClientRequestFailure.DISCONNECTED: // the client's
          void error.details;
          break;
        default:
          void (error.code satisfies ErrorCode | ClientRequestFailure);
      }
    }
    if (isRequestError(error)) void (error.code satisfies string), error.method;
    throw error;
  }
}

/** The error of `request(K, …)`: the catalogue's codes, the method's own and the client's. */
export type CreateErrorCodes = Assert<
  Equals<RequestErrorOf<Methods, "sessions.create">["code"], ErrorCode | "quota_exceeded" | ClientRequestFailure>
>;
/** A method that declares no codes of its own: only the catalogue's and the client's. */
export type NoOwnCodes = Assert<
  Equals<
    RequestErrorOf<{ "a.b": { params: object; result: null; errors: never } }, "a.b">["code"],
    ErrorCode | ClientRequestFailure
  >
>;
export type ClientCodes = Assert<Equals<ClientRequestFailure, "disconnected" | "not_connected" | "request_timeout" | "aborted">>;
/** Untyped, a RequestError's code is any string. */
export type UntypedCode = Assert<Equals<RequestError["code"], string>>;

// Without the method map (`RealtimeClient<Topics>` as before): any method, unknown params and result.
export function untypedRequests(client: RealtimeClient<Topics>): Promise<unknown> {
  return client.request("anything.at.all", { whatever: 1 });
}

// Another app's map: the same typing.
type Orders = {
  "orders.place": { params: { sku: string; qty: number }; result: { order_id: string }; errors: "out_of_stock" };
};
export async function otherAppRequests(client: RealtimeClient<Prices, Orders>): Promise<string> {
  const { order_id } = await client.request("orders.place", { sku: "A-1", qty: 2 });
  return order_id;
}

export async function requestMisuse(client: RealtimeClient<Topics, Methods>): Promise<void> {
  // @ts-expect-error: a title is a string
  await client.request("sessions.create", { title: 42 });
  // @ts-expect-error: a required param is missing
  await client.request("sessions.create", {});
  // @ts-expect-error: messages.send needs session_id, role and text
  await client.request("messages.send", { session_id: "s-1", text: "hi" });
  // @ts-expect-error: not a role
  await client.request("messages.send", { session_id: "s-1", role: "robot", text: "hi" });
  // @ts-expect-error: an unknown param
  await client.request("sessions.remove", { id: "s-1", force: true });
  // @ts-expect-error: no such method on the server
  await client.request("sessions.nope", {});
  // @ts-expect-error: params are required
  await client.request("sessions.remove");
  // @ts-expect-error: sessions.remove's result is not a Session
  const removed: Session = await client.request("sessions.remove", { id: "s-1" });
  void removed;
  // @ts-expect-error: the timeout is a number of milliseconds
  await client.request("sessions.remove", { id: "s-1" }, { timeout: "5s" });
  // @ts-expect-error: a method map's entries need params, result and errors
  void ({} as RealtimeClient<Topics, { "a.b": { params: object; result: null } }>);
  try {
    await client.request("sessions.remove", { id: "s-1" });
  } catch (error) {
    if (client.isRequestError(error, "sessions.remove")) {
      // @ts-expect-error: sessions.remove does not declare quota_exceeded
      if (error.code === "quota_exceeded") return;
    }
  }
}
