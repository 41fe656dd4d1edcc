// Compiled by ./scripts/check-types with `tsc --noEmit --strict`: if the generated
// types stop narrowing (a `type` literal turned optional, a union turned into an
// interface, a payload left untyped), this file stops compiling. Written by hand.
import type {
  ClientMessage,
  CloseCode,
  ErrorCode,
  EventOf,
  ServerMessage,
  Snapshot,
  SnapshotOf,
  SnapshotPayload,
  TopicEvent,
  TopicName,
  TopicSnapshot,
  TypedServerMessage,
} from "../../frontend-types/index";

function assertNever(value: never): never {
  throw new globalThis.Error(`unhandled: ${JSON.stringify(value)}`);
}

export function describeServer(m: ServerMessage): string {
  switch (m.type) {
    case "hello":
      return `${m.connection_id} protocol ${m.protocol} max ${m.max_topics} topics`;
    case "snapshot":
      return `${m.topic}@${m.seq}`;
    case "event":
      return `${m.topic}@${m.seq}`;
    case "error":
      return `${m.code}: ${m.message} ${m.id ?? ""} ${m.topic ?? ""}`;
    case "pong":
      return m.id ?? "";
    default:
      return assertNever(m);
  }
}

export function describeClient(m: ClientMessage): string {
  switch (m.type) {
    case "subscribe":
    case "unsubscribe":
      return m.topics.join(",");
    case "ping":
      return m.id ?? "";
    default:
      return assertNever(m);
  }
}

export function errorAdvice(code: ErrorCode): string {
  switch (code) {
    case "invalid_json":
    case "invalid_message":
    case "unknown_type":
      return "fix the client";
    case "unknown_topic":
    case "too_many_topics":
    case "snapshot_failed":
      return "topic not served";
    default:
      return assertNever(code);
  }
}

export function reconnects(code: CloseCode): boolean {
  switch (code) {
    case 1000:
    case 1008:
      return false;
    case 1001:
    case 1009:
    case 1011:
    case 4008:
      return true;
    default:
      return assertNever(code);
  }
}

// Even the plain envelope's payload is typed: the union of every topic's snapshot.
export function snapshotSize(m: Snapshot): number {
  const p: SnapshotPayload = m.payload;
  if ("sessions" in p) return p.sessions.length;
  if ("terminals" in p) return p.terminals.length;
  return p.messages.length;
}

// The topic map: the payload type follows from the topic name, patterns included.
export function sessionTitles(p: SnapshotOf<"sessions.state">): string[] {
  return p.sessions.map((s) => s.title);
}

export function activityOp(e: EventOf<"sessions.activity:s-1">): string {
  switch (e.op) {
    case "append":
      return e.message.text;
    case "delta":
      return `${e.offset}:${e.text}`;
    case "end":
      return e.text;
    default:
      return assertNever(e);
  }
}

export function onTyped(m: TypedServerMessage): number {
  if (m.type === "snapshot" && m.topic === "terminals.state") {
    return m.payload.terminals.length;
  }
  if (m.type === "event" && m.topic === "sessions.state") {
    return m.payload.op === "upsert" ? m.payload.session.title.length : m.payload.id.length;
  }
  return 0;
}

export function narrowEvent<T extends TopicName>(e: TopicEvent<T>): TopicEvent<T>["payload"] {
  return e.payload;
}

export const snap: TopicSnapshot<"sessions.state"> = {
  type: "snapshot",
  topic: "sessions.state",
  seq: 0,
  payload: { sessions: [] },
};

export const subscribe: ClientMessage = { type: "subscribe", topics: ["sessions.state", "terminals.state"] };

// @ts-expect-error -- an unknown topic name is not a TopicName
export const wrongTopic: TopicName = "nonexistent.topic";

// @ts-expect-error -- a snapshot's payload must match its topic
export const wrongPayload: TopicSnapshot<"sessions.state"> = { ...snap, payload: { terminals: [] } };

// @ts-expect-error -- the server omits absent optional fields: `id` is never null
export const nullId: ServerMessage = { type: "pong", id: null };
