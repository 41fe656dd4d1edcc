/* eslint-disable */
/**
 * The realtime protocol's types, generated from the Pydantic models by
 * ./scripts/generate-types (pydantic-to-typescript + json2ts + a documented post-step
 * in backend/realtime/typegen_ts.py). Do not edit: change the models and regenerate.
 */
export type ActivityEvent = MessageAppend | TextDelta | MessageEnd;
export type ClientMessage = Subscribe | Unsubscribe | Ping;
/**
 * A WebSocket close code the server sends. Codes not listed here (including 1006, seen locally on a dropped connection): reconnect with backoff.
 */
export type CloseCode =
  | CloseCodeNormal
  | CloseCodeGoingAway
  | CloseCodePolicyViolation
  | CloseCodeMessageTooBig
  | CloseCodeInternalError
  | CloseCodeSlowConsumer;
/**
 * Normal closure, asked for by the client. Reconnect: never.
 */
export type CloseCodeNormal = 1000;
/**
 * The server is shutting down or restarting. Reconnect now and resync; another node (or the restarted one) will answer. Reconnect: now.
 */
export type CloseCodeGoingAway = 1001;
/**
 * The request broke a server policy (for example a disallowed Origin). Reconnecting unchanged will fail the same way. Reconnect: never.
 */
export type CloseCodePolicyViolation = 1008;
/**
 * The client sent a frame larger than `hello.max_frame_bytes`. Fix the client; reconnect with backoff. Reconnect: backoff.
 */
export type CloseCodeMessageTooBig = 1009;
/**
 * Unexpected server error. Reconnect with backoff. Reconnect: backoff.
 */
export type CloseCodeInternalError = 1011;
/**
 * The client read too slowly and its outbound buffer (`hello.max_queue_bytes`) overflowed. Reconnect with backoff and resync from fresh snapshots. Reconnect: backoff.
 */
export type CloseCodeSlowConsumer = 4008;
/**
 * What a client does after a close code (`x-reconnect` in schemas/close-codes.json).
 */
export type Reconnect = "now" | "backoff" | "never";
export type ServerMessage = Hello | Snapshot | Event | Error | Pong;
/**
 * The code of an `error` frame. Branch on it, never on `message`.
 */
export type ErrorCode =
  | ErrorCodeInvalidJson
  | ErrorCodeInvalidMessage
  | ErrorCodeUnknownType
  | ErrorCodeUnknownTopic
  | ErrorCodeTooManyTopics
  | ErrorCodeSnapshotFailed;
/**
 * The frame was not valid JSON. Fix the client; the connection stays open.
 */
export type ErrorCodeInvalidJson = "invalid_json";
/**
 * The frame was JSON but not a valid client message (missing or wrongly typed field, binary frame). Fix the client; the connection stays open.
 */
export type ErrorCodeInvalidMessage = "invalid_message";
/**
 * The `type` field names no client message. The connection stays open.
 */
export type ErrorCodeUnknownType = "unknown_type";
/**
 * The topic matches no registered topic, or names a resource that does not exist. Carries `topic`; the other topics of the same subscribe are still served.
 */
export type ErrorCodeUnknownTopic = "unknown_topic";
/**
 * Subscribing would exceed the per-connection topic limit announced in `hello.max_topics`. Carries `topic`; unsubscribe from something first.
 */
export type ErrorCodeTooManyTopics = "too_many_topics";
/**
 * The server could not build the topic's snapshot (internal error or timeout). Carries `topic`; the client is not subscribed to it and may retry with backoff.
 */
export type ErrorCodeSnapshotFailed = "snapshot_failed";
export type SessionsEvent = SessionUpsert | SessionRemove;
export type TerminalsEvent = TerminalUpsert | TerminalRemove;

/**
 * Insert or replace the message with this id.
 */
export interface MessageAppend {
  op: "append";
  message: Message;
}
export interface Message {
  id: string;
  session_id: string;
  role: "user" | "assistant" | "system";
  text: string;
  /**
   * True while an assistant message is still being streamed.
   */
  streaming: boolean;
  created_at: string;
}
/**
 * Streamed text: the message's text from `offset` on starts with `text`.
 *
 * Apply as `text = text[:offset] + delta` when `offset + len(delta)` exceeds the
 * current length, else ignore (already reflected). Deltas of one message arrive
 * in order, coalesced over about 50 ms.
 */
export interface TextDelta {
  op: "delta";
  message_id: string;
  offset: number;
  text: string;
}
/**
 * The message is complete; `text` is its whole final text.
 */
export interface MessageEnd {
  op: "end";
  message_id: string;
  text: string;
}
export interface ActivitySnapshot {
  session_id: string;
  /**
   * The most recent messages, oldest first (bounded).
   */
  messages: Message[];
}
/**
 * Subscribe to topics. Each gets a `snapshot`, then `event`s. Subscribing to a
 * topic already subscribed sends a fresh snapshot (the way to resync one topic).
 */
export interface Subscribe {
  type: "subscribe";
  /**
   * @minItems 1
   * @maxItems 100
   */
  topics: [string, ...string[]];
  id?: string | null;
}
/**
 * Stop a topic's events. Unsubscribing from a topic not subscribed is a no-op.
 */
export interface Unsubscribe {
  type: "unsubscribe";
  /**
   * @minItems 1
   * @maxItems 100
   */
  topics: [string, ...string[]];
  id?: string | null;
}
/**
 * Application-level ping (browsers cannot send WebSocket pings). Answered by a
 * `pong` after every frame the server queued before it: a barrier.
 */
export interface Ping {
  type: "ping";
  id?: string | null;
}
/**
 * Always the first frame of a connection: who you are and the limits to respect.
 */
export interface Hello {
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
}
/**
 * A topic's whole current state. Replace, don't merge. `seq` is the seq of the
 * last event the state reflects; the events that follow have larger seqs.
 */
export interface Snapshot {
  type: "snapshot";
  topic: string;
  seq: number;
  payload: SnapshotPayload;
}
/**
 * A delta for a topic. Per topic, `seq` grows by exactly 1 per event.
 */
export interface Event {
  type: "event";
  topic: string;
  seq: number;
  payload: EventPayload;
}
/**
 * A client message could not be (fully) served. The connection stays open.
 */
export interface Error {
  type: "error";
  code: ErrorCode;
  message: string;
  id?: string;
  topic?: string;
}
/**
 * Answer to `ping`, echoing its `id`.
 */
export interface Pong {
  type: "pong";
  id?: string;
}
/**
 * Insert or replace the session with this id.
 */
export interface SessionUpsert {
  op: "upsert";
  session: Session;
}
export interface Session {
  id: string;
  title: string;
  state: "idle" | "running" | "waiting" | "error" | "done";
  created_at: string;
  updated_at: string;
}
/**
 * Remove the session with this id (no-op if absent).
 */
export interface SessionRemove {
  op: "remove";
  id: string;
}
export interface SessionsSnapshot {
  sessions: Session[];
}
export interface TerminalUpsert {
  op: "upsert";
  terminal: Terminal;
}
export interface Terminal {
  id: string;
  name: string;
  session_id: string | null;
  status: "starting" | "running" | "exited";
  exit_code: number | null;
  updated_at: string;
}
export interface TerminalRemove {
  op: "remove";
  id: string;
}
export interface TerminalsSnapshot {
  terminals: Terminal[];
}

// ---------------------------------------------------------------- topic map
// Appended by the post-step of backend/realtime/typegen_ts.py: json2ts cannot express it.

/**
 * Every topic a client may subscribe to, by name (or pattern: a `{param}` matches any
 * value) → the payload types of its `snapshot` and `event` frames.
 */
export interface Topics {
  /**
   * Every session and its state.
   *
   * Pattern: `sessions.state`.
   */
  "sessions.state": { snapshot: SessionsSnapshot; event: SessionsEvent };
  /**
   * One session's recent messages and its streaming text.
   *
   * Pattern: `sessions.activity:{session_id}`.
   */
  [topic: `sessions.activity:${string}`]: { snapshot: ActivitySnapshot; event: ActivityEvent };
  /**
   * Every terminal and its status.
   *
   * Pattern: `terminals.state`.
   */
  "terminals.state": { snapshot: TerminalsSnapshot; event: TerminalsEvent };
}
/** A topic name a client may subscribe to. */
export type TopicName = keyof Topics;
/** The `payload` of a `snapshot` frame of topic `T`. */
export type SnapshotOf<T extends TopicName> = Topics[T]["snapshot"];
/** The `payload` of an `event` frame of topic `T`. */
export type EventOf<T extends TopicName> = Topics[T]["event"];
/** The `payload` of any `snapshot` frame: narrow with `TopicSnapshot` (compare `topic`). */
export type SnapshotPayload = Topics[TopicName]["snapshot"];
/** The `payload` of any `event` frame: narrow with `TopicEvent` (compare `topic`). */
export type EventPayload = Topics[TopicName]["event"];
/** A `snapshot` frame whose `payload` is typed by its `topic`: comparing `topic` narrows it. */
export type TopicSnapshot<T extends TopicName = TopicName> = T extends TopicName
  ? Omit<Snapshot, "topic" | "payload"> & { topic: T; payload: SnapshotOf<T> }
  : never;
/** An `event` frame whose `payload` is typed by its `topic`: comparing `topic` narrows it. */
export type TopicEvent<T extends TopicName = TopicName> = T extends TopicName
  ? Omit<Event, "topic" | "payload"> & { topic: T; payload: EventOf<T> }
  : never;
/** `ServerMessage` with every `snapshot` and `event` payload typed by its topic. */
export type TypedServerMessage = Exclude<ServerMessage, Snapshot | Event> | TopicSnapshot | TopicEvent;
