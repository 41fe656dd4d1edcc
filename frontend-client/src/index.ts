/**
 * @aiohttp-realtime/client: a typed, reconnecting client for an aiohttp-realtime
 * endpoint, for browsers and Node >= 20. See README.md and docs/client.md.
 *
 *     import { RealtimeClient } from "@aiohttp-realtime/client";
 *     import type { Methods, Topics } from "./realtime/index.js"; // generated for your app
 *     const client = new RealtimeClient<Topics, Methods>();
 */
export { SUBPROTOCOL, type Token, TokenError, type TokenProvider } from "./auth.js";
export { Backoff, type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.js";
export {
  type ClientOptions,
  type ConnectionStatus,
  type GapInfo,
  RealtimeClient,
  type TopicHandlers,
  type TopicMap,
  type TopicPayloads,
  type Transport,
} from "./client.js";
/** The SSE transport's pieces (the `fetch` option's type, the stream parser). */
export {
  type FetchInitLike,
  type FetchLike,
  type FetchResponseLike,
  MAX_BATCH,
  type SseEvent,
  SseParser,
  type StreamReaderLike,
  sseUrlFor,
} from "./sse.js";
/** `reconnectAdvice(code)`: the catalogue's advice after a close. `reconnectWithinMs(reason)`:
 * the reconnect window (ms, capped at `MAX_RECONNECT_WITHIN_MS`) a close reason gives,
 * `"…; reconnect_within_ms=N"`, or null; the client waits a random delay below it. */
export { MAX_RECONNECT_WITHIN_MS, reconnectAdvice, reconnectWithinMs } from "./closecodes.js";
export {
  type AbortSignalLike,
  ClientRequestFailure,
  isRequestError,
  type MethodMap,
  type MethodSignature,
  RequestError,
  type RequestErrorOf,
  type RequestOptions,
  type ResponseErrorCode,
} from "./requests.js";
export { UNKNOWN_OUTCOME } from "./retries.js";
/** Topic stores (store.ts): a topic's state from its snapshot and events, its status
 * and seq, in the `subscribe` / `getSnapshot` shape UI frameworks consume. */
export {
  TopicStore,
  type TopicStoreFamily,
  type TopicStoreOptions,
  type TopicReducer,
  type TopicStatus,
  type TopicView,
  topicStore,
  topicStores,
} from "./store.js";
export type { Clock, SocketLike, WebSocketConstructor } from "./env.js";
export type { DocumentLike, EventTargetLike, PageTargets } from "./env.js"; // the `page` option
// The protocol, generated (scripts/generate-types): frames, ErrorCode, CloseCode,
// RECONNECT_ADVICE, PROTOCOL_VERSION. The same for every app.
export * from "./protocol.js";
