/**
 * The hooks: a topic's state (`useTopic`), a method call with its pending state
 * (`useRequest`), and the connection's status (`useConnectionStatus`), all through
 * `useSyncExternalStore`, so a render never shows a torn state.
 */
import {
  isRequestError,
  type RequestErrorOf,
  type RequestOptions,
  type TopicReducer,
  type TopicStore,
  type TopicView,
  type ConnectionStatus,
} from "@aiohttp-realtime/client";
import { useCallback, useMemo, useState, useSyncExternalStore } from "react";
import { useRealtimeClient } from "./provider.js";
import type { MethodName, RegisteredMethods, RegisteredTopics, TopicName } from "./register.js";
import { type AnyClient, type AnyReducer, sharedStore } from "./stores.js";

/**
 * A topic's state, built by `reducer` from its snapshot and events, with its status
 * (`syncing`, `live`, `stale`, `error`) and the seq it reflects. Re-renders on a change only.
 *
 * Every component that asks for the same topic with the same reducer shares one store,
 * and the client one subscription on the wire: subscribed while one of them is mounted,
 * unsubscribed a tick after the last one unmounts (StrictMode's remount costs nothing).
 * Declare the reducer outside the component: its first value for a topic is the one
 * used (a new object on each render would otherwise be a new store each time), and
 * another reducer for the same topic is a store of its own (and a subscribe of its own).
 */
export function useTopic<K extends TopicName, S>(topic: K, reducer: TopicReducer<RegisteredTopics[K], S>): TopicView<S> {
  const client = useRealtimeClient() as unknown as AnyClient;
  // The first reducer given for this topic, on purpose (not a dependency).
  const pinned = useMemo(() => reducer as unknown as AnyReducer<S>, [client, topic]);
  const { store, subscribe } = sharedStore(client, topic, pinned);
  return useSyncExternalStore(subscribe, store.getSnapshot, store.getSnapshot);
}

/** A store made by the app (`topicStore`, `topicStores(…).at(…)`), read in a component. */
export function useTopicStore<S>(store: TopicStore<S>): TopicView<S> {
  return useSyncExternalStore(store.subscribe, store.getSnapshot, store.getSnapshot);
}

type ParamsOf<K extends MethodName> = RegisteredMethods[K]["params"];
type ResultOf<K extends MethodName> = RegisteredMethods[K]["result"];
type ErrorOf<K extends MethodName> = RequestErrorOf<RegisteredMethods, K>;

/** How a call ended: its result, or the `RequestError` it failed with. */
export type RequestOutcome<K extends MethodName> =
  | { readonly ok: true; readonly result: ResultOf<K> }
  | { readonly ok: false; readonly error: ErrorOf<K> };

export interface RequestHandle<K extends MethodName> {
  /** Call the method (`client.request`). Never rejects with a `RequestError`: the
   * outcome says how it ended, and `result` / `error` below follow it. */
  readonly call: (params: ParamsOf<K>, options?: RequestOptions) => Promise<RequestOutcome<K>>;
  /** Whether a call of this hook is in flight (several may be). */
  readonly pending: boolean;
  /** The error of the latest call that ended, if it failed (`code`: the server's, the
   * method's own, or the client's `not_connected`, `disconnected`, …). */
  readonly error: ErrorOf<K> | null;
  /** The result of the latest call that ended, if it succeeded. */
  readonly result: ResultOf<K> | undefined;
  /** Forget `error` and `result`. */
  readonly reset: () => void;
}

interface Calls<K extends MethodName> {
  inFlight: number;
  latest: number;
  error: ErrorOf<K> | null;
  result: ResultOf<K> | undefined;
}

let callCount = 0;

/**
 * A typed call of `method` over the socket, with its state for the render: `pending`,
 * then `result` or `error`. The outcome of an older call that ends after a newer one
 * does not overwrite the newer one's. `call` keeps its identity while the client and
 * the method do.
 */
export function useRequest<K extends MethodName>(method: K): RequestHandle<K> {
  const client = useRealtimeClient();
  const [calls, setCalls] = useState<Calls<K>>({ inFlight: 0, latest: 0, error: null, result: undefined });
  const call = useCallback(
    async (params: ParamsOf<K>, options?: RequestOptions): Promise<RequestOutcome<K>> => {
      callCount += 1;
      const id = callCount;
      setCalls((c) => ({ ...c, inFlight: c.inFlight + 1, latest: id }));
      const ended = (change: Partial<Calls<K>>) =>
        setCalls((c) => ({ ...c, ...(c.latest === id ? change : {}), inFlight: c.inFlight - 1 }));
      try {
        const result: ResultOf<K> = await client.request(method, params, options);
        ended({ result, error: null });
        return { ok: true, result };
      } catch (error) {
        if (!isRequestError(error, method)) {
          ended({});
          throw error;
        }
        const typed = error as ErrorOf<K>;
        ended({ error: typed, result: undefined });
        return { ok: false, error: typed };
      }
    },
    [client, method],
  );
  const reset = useCallback(() => setCalls((c) => ({ ...c, error: null, result: undefined })), []);
  return { call, pending: calls.inFlight > 0, error: calls.error, result: calls.result, reset };
}

/** The client's connection status (`idle`, `connecting`, `live`, `reconnecting` with
 * `retryAt`, `stopped`), re-rendering on each change. */
export function useConnectionStatus(): ConnectionStatus {
  const client = useRealtimeClient();
  const subscribe = useCallback((onChange: () => void) => client.onStatus(() => onChange()), [client]);
  const status = useCallback(() => client.status, [client]);
  return useSyncExternalStore(subscribe, status, status);
}
