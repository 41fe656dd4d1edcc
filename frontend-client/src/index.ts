/** The browser client for `/api/realtime`. See docs/client.md. */
export { Backoff, type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.js";
export {
  type ClientOptions,
  type ConnectionStatus,
  type GapInfo,
  RealtimeClient,
  type TopicHandlers,
} from "./client.js";
export { RECONNECT_ADVICE, type Reconnect, reconnectAdvice } from "./closecodes.js";
export type { Clock, SocketLike } from "./env.js";
export type { Error as ErrorFrame } from "./wire.js";
export type { EventOf, SnapshotOf, TopicName, Topics } from "./topics.js";
