// Compiled by scripts/check-types (`tsc --noEmit -p tests/ts-fixture`: strict,
// exactOptionalPropertyTypes, verbatimModuleSyntax) against the generated
// frontend-types/. If the generated types stop narrowing (a `type` tag turned
// optional, a union turned loose, a catalogue turned into plain `string`/`number`, a
// payload left untyped, a method's params or result left untyped), this file stops
// compiling. Written by hand, but generic over the catalogues, the topic map and the
// method map: a new error code, close code, topic or method needs no edit here. (A new frame type does: the two switches below are exhaustive on
// purpose, since a new frame type is a protocol change.)
import {
  type ClientMessage,
  CloseCode,
  ErrorCode,
  type ErrorFrame,
  type EventOf,
  type MethodErrorOf,
  type MethodName,
  type Methods,
  type ParamsOf,
  PROTOCOL_VERSION,
  RECONNECT_ADVICE,
  type Reconnect,
  type RequestFrame,
  type ResponseFrame,
  type ResultOf,
  type ServerMessage,
  type SnapshotOf,
  type TopicEvent,
  type TopicName,
  type Topics,
  type TopicSnapshot,
  type TypedServerMessage,
} from "../../frontend-types/index.js";

// ---------------------------------------------------------------- type-level asserts

export type Assert<T extends true> = T;
export type Not<T extends boolean> = T extends true ? false : true;
export type Equals<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;
export type IsAny<T> = 0 extends 1 & T ? true : false;
/** Neither `any` nor `unknown`: a real type. */
export type IsTyped<T> = IsAny<T> extends true ? false : unknown extends T ? false : true;
/** A union of literals of `Base`, not `Base` itself (nor any/unknown). */
export type IsLiteralUnion<T, Base> = IsTyped<T> extends true ? (Base extends T ? false : [T] extends [Base] ? true : false) : false;
/** Every member of the union `U` has a required `type` tag that is one string literal. */
export type TagsRequired<U> = U extends unknown
  ? {} extends Pick<U, "type" & keyof U>
    ? false
    : U extends { type: infer Tag }
      ? IsLiteralUnion<Tag, string>
      : false
  : never;

function assertNever(value: never): never {
  throw new globalThis.Error(`unhandled: ${JSON.stringify(value)}`);
}

// ---------------------------------------------------------------- frames

export type FrameTagsAreRequiredLiterals = Assert<Not<false extends TagsRequired<ServerMessage | ClientMessage> ? true : false>>;

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
    case "response":
      return m.error === undefined ? `${m.id} ok` : `${m.id} ${m.error.code}: ${m.error.message}`;
    case "authed":
      return `${m.id} ${m.auth_expires_in_s ?? "never"}`;
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
    case "request":
      return `${m.id} ${m.method}`;
    case "auth":
      return m.id; // never the token
    default:
      return assertNever(m);
  }
}

export const protocol: 1 = PROTOCOL_VERSION;

// @ts-expect-error -- the server omits absent optional fields: `id` is never null
export const nullId: ServerMessage = { type: "pong", id: null };

// @ts-expect-error -- a subscribe names at least one topic
export const noTopics: ClientMessage = { type: "subscribe", topics: [] };

// ---------------------------------------------------------------- error codes

export type ErrorCodesAreLiterals = Assert<IsLiteralUnion<ErrorCode, string>>;
export type ErrorFramesCarryAnErrorCode = Assert<Equals<ErrorFrame["code"], ErrorCode>>;
/** The runtime object and the type list the same codes. */
export type ErrorCodeObjectMatches = Assert<Equals<(typeof ErrorCode)[keyof typeof ErrorCode], ErrorCode>>;

export const errorCodes: ErrorCode[] = Object.values(ErrorCode);

export function isTopicError(error: ErrorFrame): boolean {
  return error.topic !== undefined && errorCodes.includes(error.code);
}

// @ts-expect-error -- not a code of the catalogue
export const wrongCode: ErrorCode = "no_such_code";

// ---------------------------------------------------------------- close codes

export type CloseCodesAreLiterals = Assert<IsLiteralUnion<CloseCode, number>>;
export type ReconnectIsLiteral = Assert<IsLiteralUnion<Reconnect, string>>;
export type CloseCodeObjectMatches = Assert<Equals<(typeof CloseCode)[keyof typeof CloseCode], CloseCode>>;

/** Advice for every code of the catalogue, and only for those (the generated table). */
export const advice: { readonly [C in CloseCode]: Reconnect } = RECONNECT_ADVICE;
export type AdviceKeysAreTheCodes = Assert<Equals<keyof typeof RECONNECT_ADVICE, CloseCode>>;

export const closeCodes: CloseCode[] = Object.values(CloseCode);

export function reconnects(code: CloseCode): boolean {
  return advice[code] !== "never";
}

// @ts-expect-error -- 1006 is seen locally, never sent: not in the catalogue
export const dropped: CloseCode = 1006;

// ---------------------------------------------------------------- the topic map

/** Topic names are literals and patterns, not any string. */
export type TopicNamesAreNotAnyString = Assert<Not<string extends TopicName ? true : false>>;

/** The topics whose snapshot or event payload is untyped (`any`/`unknown`): none. */
export type UntypedTopics = {
  [K in TopicName]: IsTyped<SnapshotOf<K>> extends true ? (IsTyped<EventOf<K>> extends true ? never : K) : K;
}[TopicName];
export type EveryPayloadIsTyped = Assert<Equals<UntypedTopics, never>>;

/** The topic map fits a generic client's constraint. */
export type TopicsIsATopicMap = Assert<
  Topics extends { readonly [topic: string]: { snapshot: unknown; event: unknown } } ? true : false
>;

// Generic over every topic: the payload type follows from the topic name.
export function snapshotPayload<K extends TopicName>(m: TopicSnapshot<K>): SnapshotOf<K> {
  return m.payload;
}

export function eventPayload<K extends TopicName>(m: TopicEvent<K>): EventOf<K> {
  return m.payload;
}

export function typedFrame<K extends TopicName>(topic: K, seq: number, payload: SnapshotOf<K>): TopicSnapshot<K> {
  return { type: "snapshot", topic, seq, payload } as TopicSnapshot<K>;
}

// Comparing `topic` narrows the payload, patterns included.
export function onTyped(m: TypedServerMessage): number {
  if (m.type === "snapshot" && m.topic === "terminals.state") {
    return m.payload.terminals.length;
  }
  if (m.type === "event" && m.topic === "sessions.state") {
    return m.payload.op === "upsert" ? m.payload.session.title.length : m.payload.id.length;
  }
  if (m.type === "error") {
    return m.code.length;
  }
  return 0;
}

export function activityText(e: EventOf<"sessions.activity:s-1">): string {
  return e.op === "append" ? e.message.text : e.text;
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

// ---------------------------------------------------------------- the method map

/** Method names are literals, not any string. */
export type MethodNamesAreNotAnyString = Assert<Not<string extends MethodName ? true : false>>;

/** The methods whose params or result is untyped (`any`/`unknown`): none. */
export type UntypedMethods = {
  [K in MethodName]: IsTyped<ParamsOf<K>> extends true ? (IsTyped<ResultOf<K>> extends true ? never : K) : K;
}[MethodName];
export type EveryMethodIsTyped = Assert<Equals<UntypedMethods, never>>;

/** Each method's own error codes are string literals (or `never`: none), not `string`. */
export type LooseErrorCodes = {
  [K in MethodName]: [MethodErrorOf<K>] extends [never] ? never : IsLiteralUnion<MethodErrorOf<K>, string> extends true ? never : K;
}[MethodName];
export type ErrorCodesOfMethodsAreLiterals = Assert<Equals<LooseErrorCodes, never>>;

/** The method map fits a generic client's constraint. */
export type MethodsIsAMethodMap = Assert<
  Methods extends { readonly [method: string]: { params: unknown; result: unknown; errors: string } } ? true : false
>;

// A typed call, generic over every method: the params follow from the method name.
export function requestFrame<M extends MethodName>(id: string, method: M, params: ParamsOf<M>): RequestFrame {
  return { type: "request", id, method, params };
}

/** What a response to `M` carries, typed: its result, or a catalogue or declared code. */
export type TypedResponse<M extends MethodName> =
  | { id: string; result: ResultOf<M> }
  | { id: string; error: { code: ErrorCode | MethodErrorOf<M>; message: string; details?: unknown } };

export function typedResponse<M extends MethodName>(frame: ResponseFrame, _method: M): TypedResponse<M> {
  return frame.error === undefined
    ? { id: frame.id, result: frame.result as ResultOf<M> }
    : { id: frame.id, error: frame.error as { code: ErrorCode | MethodErrorOf<M>; message: string } };
}

export function created(response: TypedResponse<"sessions.create">): string {
  if ("result" in response) return response.result.title;
  switch (response.error.code) {
    case "quota_exceeded":
      return "quota";
    default:
      return response.error.code satisfies ErrorCode;
  }
}

export const create: RequestFrame = requestFrame("c1", "sessions.create", { title: "Deploy" });

// @ts-expect-error -- a title is a string
export const wrongParams = requestFrame("c2", "sessions.create", { title: 42 });

// @ts-expect-error -- a required param is missing
export const missingParam = requestFrame("c3", "messages.send", { session_id: "s-1", text: "hi" });

// @ts-expect-error -- an unknown method name is not a MethodName
export const wrongMethod: MethodName = "sessions.nope";

// @ts-expect-error -- sessions.remove declares not_found only
export const wrongOwnCode: MethodErrorOf<"sessions.remove"> = "quota_exceeded";

// @ts-expect-error -- a request names its method and has an id
export const noId: ClientMessage = { type: "request", method: "sessions.create" };
