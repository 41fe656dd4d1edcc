/* eslint-disable */
/**
 * The realtime protocol: frames and catalogues, the same for every app.
 * Generated from the Pydantic models by `python -m aiohttp_realtime.typegen` (pydantic-to-typescript,
 * json2ts and a documented post-step). Do not edit: change the models and regenerate.
 */
export type ClientMessage = SubscribeFrame | UnsubscribeFrame | PingFrame | RequestFrame | AuthFrame;
export type Topic = string;
export type RequestId = string;
/**
 * 1-255 printable ASCII characters (space to `~`), e.g. a UUID.
 */
export type IdempotencyKey = string;
export type ServerMessage =
  HelloFrame | SnapshotFrame | EventFrame | ErrorFrame | PongFrame | ResponseFrame | AuthedFrame;

/**
 * Subscribe to topics. Each gets a `snapshot`, then `event`s. Subscribing to a
 * topic already subscribed sends a fresh snapshot (the way to resync one topic).
 */
export interface SubscribeFrame {
  type: "subscribe";
  /**
   * @minItems 1
   * @maxItems 100
   */
  topics: [Topic, ...Topic[]];
  id?: RequestId | null;
}
/**
 * Stop a topic's events. Unsubscribing from a topic not subscribed is a no-op.
 */
export interface UnsubscribeFrame {
  type: "unsubscribe";
  /**
   * @minItems 1
   * @maxItems 100
   */
  topics: [Topic, ...Topic[]];
  id?: RequestId | null;
}
/**
 * Application-level ping (browsers cannot send WebSocket pings). Answered by a
 * `pong` after every frame the server queued before it: a barrier.
 */
export interface PingFrame {
  type: "ping";
  id?: RequestId | null;
}
/**
 * Call a method: answered by exactly one `response` with the same `id` (never
 * by an `error` frame, unless the request itself is malformed). Requests run
 * concurrently, at most `hello.max_requests_in_flight` at a time; their responses
 * come in the order they finish. A response comes after every event its method
 * published on a topic this connection is subscribed to (docs/protocol.md). Not
 * replayed by the server after a reconnect: a request whose connection drops has an
 * unknown outcome. A client that resends it (same method, same params) with the same
 * `idempotency_key` gets the first call's outcome, if the method honours keys.
 */
export interface RequestFrame {
  type: "request";
  /**
   * Chosen by the client, echoed by the response; unique among its pending requests.
   */
  id: string;
  /**
   * The method's name.
   */
  method: string;
  /**
   * The method's params (a JSON object); absent: `{}`.
   */
  params?: unknown;
  /**
   * Fresh per call, the same when the call is resent after an unknown outcome (a dropped connection, a timeout, `unavailable`). A method that writes and honours it runs once per key and answers a resend with the first outcome; the same key with other params is answered `idempotency_key_reused`.
   */
  idempotency_key?: IdempotencyKey | null;
}
/**
 * Present a new token for this connection before its credential expires
 * (`hello.auth_expires_in_s`, `authed.auth_expires_in_s`): answered by `authed` with
 * the same `id`, or by an `error` with it (`unauthorized`: not valid or expired;
 * `principal_changed`: another principal's; `rate_limited`: more than a few per
 * minute). The token must name the connection's principal. Every current subscription
 * is authorized again under it: a topic no longer allowed gets `forbidden` (with its
 * `topic` and this `id`, before the `authed`) and is unsubscribed; the others go on
 * with no gap - no new snapshot, their events keep flowing. On failure the connection
 * keeps its credential until that expires (then close 4001). The server handles one
 * `auth` at a time: frames after it are read once it is answered.
 */
export interface AuthFrame {
  type: "auth";
  /**
   * Chosen by the client, echoed by the answer.
   */
  id: string;
  /**
   * The new bearer token, as `Authorization: Bearer` would carry it (visible ASCII, no spaces, no `Bearer ` prefix).
   */
  token: string;
}
/**
 * Always the first frame of a connection: who you are and the limits to respect.
 */
export interface HelloFrame {
  type: "hello";
  /**
   * Opaque id of this connection, for logs.
   */
  connection_id: string;
  server_time: string;
  /**
   * Protocol version (`PROTOCOL_VERSION`).
   */
  protocol: 1;
  /**
   * Seconds between the server's WebSocket pings; a peer that never answers is closed.
   */
  heartbeat_s: number;
  /**
   * Bytes the server buffers for this client before closing it with 4008.
   */
  max_queue_bytes: number;
  /**
   * Largest client frame accepted; a larger one closes with 1009.
   */
  max_frame_bytes: number;
  /**
   * Most topics one connection may subscribe to.
   */
  max_topics: number;
  /**
   * Largest snapshot sent; a larger one is refused with `snapshot_too_large`.
   */
  max_snapshot_bytes: number;
  /**
   * Client frames per second allowed on average; more: `rate_limited`.
   */
  frames_per_s: number;
  /**
   * Topics subscribed per second allowed on average; more: `rate_limited`.
   */
  subscribes_per_s: number;
  /**
   * Whether the server authenticates connections (false: authentication is off).
   */
  auth: boolean;
  /**
   * Requests one connection may have unanswered; more: `too_many_requests`.
   */
  max_requests_in_flight: number;
  /**
   * Seconds a method may run; slower: `timeout`.
   */
  request_timeout_s: number;
  /**
   * Who this connection is authenticated as; absent with auth off.
   */
  principal?: string | null;
  /**
   * Seconds from this frame until the connection's credential expires; absent when it does not (or auth is off). Refresh before then with an `auth` frame, else the connection is closed with 4001. Seconds, not a time: the client's clock does not matter.
   */
  auth_expires_in_s?: number;
  /**
   * The transport this connection uses: `sse` on the Server-Sent Events transport (`GET /api/realtime/sse`); absent on the WebSocket (read absent as `websocket`). docs/protocol.md, Transports: WebSocket and SSE.
   */
  transport?: "websocket" | "sse";
  /**
   * SSE transport only: the secret that authorises this connection's client frames, sent as the `X-Realtime-Secret` header of `POST /api/realtime/sse/{connection_id}` (32 random bytes, URL-safe base64). Keep it out of logs and URLs; it dies with the connection.
   */
  sse_secret?: string;
}
/**
 * A topic's whole current state. Replace, don't merge. `seq` is the seq of the
 * last event the state reflects; the events that follow have larger seqs.
 */
export interface SnapshotFrame {
  type: "snapshot";
  topic: string;
  seq: number;
  payload: unknown;
}
/**
 * A delta for a topic. Per topic, `seq` grows by exactly 1 per event.
 */
export interface EventFrame {
  type: "event";
  topic: string;
  seq: number;
  payload: unknown;
}
/**
 * A client message could not be (fully) served. The connection stays open.
 */
export interface ErrorFrame {
  type: "error";
  code: ErrorCode;
  message: string;
  id?: string;
  topic?: string;
}
/**
 * Answer to `ping`, echoing its `id`.
 */
export interface PongFrame {
  type: "pong";
  id?: string;
}
/**
 * The answer to the `request` with this `id`: exactly one of `result` (typed by
 * the method: the method map's `result`) or `error`.
 */
export interface ResponseFrame {
  type: "response";
  id: string;
  result?: unknown;
  error?: ResponseError;
}
/**
 * Why a request failed.
 */
export interface ResponseError {
  /**
   * An `ErrorCode` of the catalogue, or one of the codes the method declares (the method map's `errors`). Branch on it, never on `message`.
   */
  code: string;
  message: string;
  /**
   * Structured detail, e.g. the field errors of `invalid_params`.
   */
  details?: unknown;
}
/**
 * The answer to the `auth` with this `id`: its token is the connection's credential
 * from now on. It comes after the `forbidden` error of every topic the token no longer
 * allows (those are unsubscribed); the other subscriptions went on without a gap.
 */
export interface AuthedFrame {
  type: "authed";
  id: string;
  /**
   * Seconds from this frame until the new credential expires; absent when it does not. Refresh again before then.
   */
  auth_expires_in_s?: number;
}

// ---------------------------------------------------------------- catalogues
// Emitted by the post-step from the Python catalogues (errors.py, closecodes.py).

/**
 * The code of an `error` frame. Branch on it, never on `message`.
 */
export const ErrorCode = {
  /**
   * The frame was not valid JSON. Fix the client; the connection stays open.
   */
  INVALID_JSON: "invalid_json",
  /**
   * The frame was JSON but not a valid client message (missing or wrongly typed field, binary frame). Fix the client; the connection stays open.
   */
  INVALID_MESSAGE: "invalid_message",
  /**
   * The `type` field names no client message. The connection stays open.
   */
  UNKNOWN_TYPE: "unknown_type",
  /**
   * The topic matches no registered topic, or names a resource that does not exist. Carries `topic`; the other topics of the same subscribe are still served.
   */
  UNKNOWN_TOPIC: "unknown_topic",
  /**
   * Subscribing would exceed the per-connection topic limit announced in `hello.max_topics`. Carries `topic`; unsubscribe from something first.
   */
  TOO_MANY_TOPICS: "too_many_topics",
  /**
   * The server could not build the topic's snapshot (internal error or timeout). Carries `topic`; the client is not subscribed to it and may retry with backoff.
   */
  SNAPSHOT_FAILED: "snapshot_failed",
  /**
   * The topic's snapshot is larger than `hello.max_snapshot_bytes`, so it is not sent. Carries `topic`; the client is not subscribed to it. Retrying does not help until the topic shrinks.
   */
  SNAPSHOT_TOO_LARGE: "snapshot_too_large",
  /**
   * The connection's principal may not subscribe to this topic. Carries `topic`; the other topics of the same subscribe are still served. Retrying does not help. After an `auth` (carrying its `id`): the new token no longer allows a topic the connection was subscribed to; it is unsubscribed, the other topics go on.
   */
  FORBIDDEN: "forbidden",
  /**
   * The client sent frames (`hello.frames_per_s`), subscribed to topics (`hello.subscribes_per_s`) or sent `auth` frames (a few per minute) faster than allowed; this message was dropped. Slow down: a client that keeps sending while limited is closed with 1008.
   */
  RATE_LIMITED: "rate_limited",
  /**
   * The server cannot reach its backplane right now, so it cannot subscribe to this topic. Carries `topic`; the client is not subscribed to it. Retry with backoff.
   */
  UNAVAILABLE: "unavailable",
  /**
   * A `response` error: the `request` named no method this server serves. Retrying does not help.
   */
  METHOD_NOT_FOUND: "method_not_found",
  /**
   * A `response` error: the `request`'s `params` do not match the method's params type; `details` lists the field errors (`loc`, `msg`, `type`). Fix the call.
   */
  INVALID_PARAMS: "invalid_params",
  /**
   * A `response` error: the method failed on the server (logged there with the connection id). Whether it took effect is unknown: resync from the snapshots. Answering an `auth`: the server's authentication hook failed; the connection keeps its credential, retry with backoff.
   */
  INTERNAL_ERROR: "internal_error",
  /**
   * A `response` error: the method did not finish within the server's `hello.request_timeout_s` and was cancelled. Whether it took effect is unknown.
   */
  TIMEOUT: "timeout",
  /**
   * A `response` error: the connection already has `hello.max_requests_in_flight` requests unanswered; this one was not run. Wait for a response, then retry.
   */
  TOO_MANY_REQUESTS: "too_many_requests",
  /**
   * A `response` error: the `request`'s `idempotency_key` was already used (within the server's window, by the same principal) for a call of another method or with other params; this one was not run. Use a fresh key for a new call.
   */
  IDEMPOTENCY_KEY_REUSED: "idempotency_key_reused",
  /**
   * Answering an `auth` (with its `id`): the token is not valid, or has expired. The connection keeps its current credential until that expires (then 4001): get another token and send `auth` again.
   */
  UNAUTHORIZED: "unauthorized",
  /**
   * Answering an `auth` (with its `id`): the token is valid but names another principal than the connection's, and a connection's principal never changes. The connection keeps its current credential until that expires (then 4001); to act as the other principal, open a new connection with that token.
   */
  PRINCIPAL_CHANGED: "principal_changed",
} as const;
/**
 * One of `ErrorCode`'s values.
 */
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * A WebSocket close code the server sends. Codes not listed here (including 1006,
 * seen locally on a dropped connection): reconnect with backoff.
 */
export const CloseCode = {
  /**
   * Normal closure, asked for by the client. Reconnect: never.
   */
  NORMAL: 1000,
  /**
   * The server is going away (shutting down). Reconnect and resync after a short random delay (within `reconnect_within_ms=N` when the reason gives it); another node (or the restarted one) will answer. A restarting server sends 1012. Reconnect: now.
   */
  GOING_AWAY: 1001,
  /**
   * The client broke the WebSocket protocol (for example an unmasked frame). Fix the client; reconnect with backoff. Reconnect: backoff.
   */
  PROTOCOL_ERROR: 1002,
  /**
   * The client sent a text frame that is not valid UTF-8. Fix the client; reconnect with backoff. Reconnect: backoff.
   */
  INVALID_PAYLOAD: 1007,
  /**
   * The client kept sending while rate limited (`rate_limited` errors were ignored). Reconnect with backoff and send less. Reconnect: backoff.
   */
  POLICY_VIOLATION: 1008,
  /**
   * The client sent a frame larger than `hello.max_frame_bytes`. Fix the client; reconnect with backoff. Reconnect: backoff.
   */
  MESSAGE_TOO_BIG: 1009,
  /**
   * Unexpected server error. Reconnect with backoff. Reconnect: backoff.
   */
  INTERNAL_ERROR: 1011,
  /**
   * The server is restarting (a deploy, a worker restart) and closes its clients in batches. Reconnect and resync after a random delay within the window the close reason gives (`reconnect_within_ms=N`; the client's own window when absent), so that every tab does not come back in the same instant. Reconnect: now.
   */
  SERVICE_RESTART: 1012,
  /**
   * The server lost its backplane (several nodes share events through it), so events of this connection's topics may be missing. Reconnect with backoff and resync from fresh snapshots. Reconnect: backoff.
   */
  TRY_AGAIN_LATER: 1013,
  /**
   * The connection's credential expired (`hello.auth_expires_in_s` after its `hello`, or the `authed` that last refreshed it) and no `auth` frame presented a new token in time. Get a new token from your provider, then reconnect at once and resync from fresh snapshots; refresh in band before the next expiry to keep the subscriptions. Reconnect: new_token.
   */
  AUTH_EXPIRED: 4001,
  /**
   * The client read too slowly and its outbound buffer (`hello.max_queue_bytes`) overflowed. Reconnect with backoff and resync from fresh snapshots. Reconnect: backoff.
   */
  SLOW_CONSUMER: 4008,
} as const;
/**
 * One of `CloseCode`'s values.
 */
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/**
 * What a client does after a close: reconnect `now` (with a little jitter), with `backoff`,
 * `never` (something must change first), or `new_token` (get a new token from your
 * provider, then reconnect at once). Whatever the advice, a reconnect resyncs from fresh
 * snapshots: there is no replay.
 */
export type Reconnect = "now" | "backoff" | "never" | "new_token";

/**
 * The server's advice for each code of its catalogue (`x-reconnect` in close-codes.json).
 */
export const RECONNECT_ADVICE: { readonly [C in CloseCode]: Reconnect } = {
  1000: "never",
  1001: "now",
  1002: "backoff",
  1007: "backoff",
  1008: "backoff",
  1009: "backoff",
  1011: "backoff",
  1012: "now",
  1013: "backoff",
  4001: "new_token",
  4008: "backoff",
};

/**
 * The protocol version a server announces in `hello.protocol`.
 */
export const PROTOCOL_VERSION = 1;
