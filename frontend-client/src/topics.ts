/**
 * Concrete topic names and their payload types, derived from the generated topic
 * map (pattern → {snapshot, event}). A pattern's `{param}` placeholders become
 * `${string}`, so `"sessions.activity:s-1"` is typed through
 * `"sessions.activity:{session_id}"`.
 */
import type { TopicMap } from "./wire.js";

export type TopicPattern = keyof TopicMap & string;

/** `"a:{x}.b"` → `` `a:${string}.b` ``. */
export type Concrete<P extends string> = P extends `${infer Head}{${string}}${infer Tail}`
  ? `${Head}${string}${Concrete<Tail>}`
  : P;

/** Every topic name a client may subscribe to. */
export type TopicName = { [P in TopicPattern]: Concrete<P> }[TopicPattern];

/** The pattern a concrete topic name belongs to. */
export type PatternOf<T extends string> = {
  [P in TopicPattern]: T extends Concrete<P> ? P : never;
}[TopicPattern];

export type SnapshotOf<T extends TopicName> = TopicMap[PatternOf<T>]["snapshot"];
export type EventOf<T extends TopicName> = TopicMap[PatternOf<T>]["event"];
