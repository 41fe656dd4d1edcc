/* eslint-disable */
/**
 * This app's topics and methods: their types, the topic map and the method map.
 * Generated from the Pydantic models by `python -m aiohttp_realtime.typegen` (pydantic-to-typescript,
 * json2ts and a documented post-step). Do not edit: change the models and regenerate.
 */
import type { EventFrame, ServerMessage, SnapshotFrame } from "./protocol.js";

export type ActivityEvent = MessageAppend | TextDelta | MessageEnd;
export type Role = "user" | "assistant" | "system";
export type SessionState = "idle" | "running" | "waiting" | "error" | "done";
export type SessionsEvent = SessionUpsert | SessionRemove;
export type TerminalsEvent = TerminalUpsert | TerminalRemove;
export type TerminalStatus = "starting" | "running" | "exited";

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
  role: Role;
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
export interface CreateSession {
  title: string;
}
export interface RemoveSession {
  id: string;
}
/**
 * `POST /api/sessions/{id}/messages`'s body, with the session's id.
 */
export interface SendMessage {
  role: Role;
  text: string;
  session_id: string;
}
export interface Session {
  id: string;
  title: string;
  state: SessionState;
  created_at: string;
  updated_at: string;
}
/**
 * The session with this id, its messages and its terminals are gone.
 */
export interface SessionRemoved {
  id: string;
}
/**
 * Insert or replace the session with this id.
 */
export interface SessionUpsert {
  op: "upsert";
  session: Session;
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
  status: TerminalStatus;
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
/**
 * `PATCH /api/sessions/{id}`'s body, with the id.
 */
export interface UpdateSession {
  title?: string | null;
  state?: SessionState | null;
  id: string;
}

// ---------------------------------------------------------------- topic map
// Emitted by the post-step (aiohttp_realtime.typegen.typescript): json2ts cannot express it.

/**
 * Every topic a client may subscribe to, by name (or pattern: a `{param}` matches any
 * value) → the payload types of its `snapshot` and `event` frames. Give it to the
 * client as its type parameter: `new RealtimeClient<Topics>(…)`.
 */
export type Topics = {
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
};
/** A topic name a client may subscribe to. */
export type TopicName = keyof Topics;
/** The `payload` of a `snapshot` frame of topic `T`. */
export type SnapshotOf<T extends TopicName> = Topics[T]["snapshot"];
/** The `payload` of an `event` frame of topic `T`. */
export type EventOf<T extends TopicName> = Topics[T]["event"];
/** A `snapshot` frame whose `payload` is typed by its `topic`: comparing `topic` narrows it. */
export type TopicSnapshot<T extends TopicName = TopicName> = T extends TopicName
  ? Omit<SnapshotFrame, "topic" | "payload"> & { topic: T; payload: SnapshotOf<T> }
  : never;
/** An `event` frame whose `payload` is typed by its `topic`: comparing `topic` narrows it. */
export type TopicEvent<T extends TopicName = TopicName> = T extends TopicName
  ? Omit<EventFrame, "topic" | "payload"> & { topic: T; payload: EventOf<T> }
  : never;
/** `ServerMessage` with every `snapshot` and `event` payload typed by its topic. */
export type TypedServerMessage =
  | Exclude<ServerMessage, SnapshotFrame | EventFrame>
  | TopicSnapshot
  | TopicEvent;

// ---------------------------------------------------------------- method map
// Emitted by the post-step (aiohttp_realtime.typegen.typescript).

/**
 * Every method a client may call with a `request` frame → its params, its result and
 * the error codes it declares (beside the catalogue's `ErrorCode`). Give it to the
 * client as its second type parameter: `new RealtimeClient<Topics, Methods>(…)`.
 */
export type Methods = {
  /**
   * Create a session.
   *
   * Errors of its own: `quota_exceeded`: A limit of the store was reached (sessions, or their titles' total size).
   */
  "sessions.create": { params: CreateSession; result: Session; errors: "quota_exceeded" };
  /**
   * Change a session's title and/or state.
   *
   * Errors of its own: `not_found`: No session has this id (never created, or removed). `quota_exceeded`: A limit of the store was reached (sessions, or their titles' total size).
   */
  "sessions.update": { params: UpdateSession; result: Session; errors: "not_found" | "quota_exceeded" };
  /**
   * Delete a session, its messages and its terminals.
   *
   * Errors of its own: `not_found`: No session has this id (never created, or removed).
   */
  "sessions.remove": { params: RemoveSession; result: SessionRemoved; errors: "not_found" };
  /**
   * Add a message to a session's activity.
   *
   * Errors of its own: `not_found`: No session has this id (never created, or removed).
   */
  "messages.send": { params: SendMessage; result: Message; errors: "not_found" };
};
/** A method a client may call. */
export type MethodName = keyof Methods;
/** The `params` of a `request` for method `M`. */
export type ParamsOf<M extends MethodName> = Methods[M]["params"];
/** The `result` of a successful `response` to method `M`. */
export type ResultOf<M extends MethodName> = Methods[M]["result"];
/** The error codes method `M` declares (its responses may also carry any `ErrorCode`). */
export type MethodErrorOf<M extends MethodName> = Methods[M]["errors"];
