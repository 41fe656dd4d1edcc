/**
 * Topic names and their payload types come from the generated topic map
 * (`Topics`: a pattern's `{param}` is a template-literal index, so
 * `"sessions.activity:s-1"` is typed through `sessions.activity:${string}`).
 */
export type { EventOf, SnapshotOf, TopicName, Topics } from "./wire.js";
