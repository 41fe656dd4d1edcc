/**
 * The topic stores the hooks share: one per (client, reducer, topic), so every
 * component that shows a topic with the same reducer reads one store, and the client
 * holds one subscription for it on the wire.
 *
 * A store subscribes on its first listener and unsubscribes once its last one has
 * left and a timer of 0 ms has run (`releaseAfterMs: 0`). StrictMode's unmount and
 * remount happen within one task, so the remount finds the store still subscribed:
 * nothing is sent. Released, a store leaves the cache, so a topic seen once (a
 * session's activity) does not stay subscribed or cached.
 */
import {
  type MethodMap,
  type RealtimeClient,
  type TopicMap,
  type TopicPayloads,
  type TopicReducer,
  TopicStore,
} from "@aiohttp-realtime/client";

/** A client and a reducer without their types: `useTopic` checked them against each other. */
export type AnyClient = RealtimeClient<TopicMap, MethodMap>;
export type AnyReducer<S> = TopicReducer<TopicPayloads, S>;

/** A cached store, and the `subscribe` that puts it back in the cache if it was
 * released while a component still held it (a render that waited long to commit). */
export interface SharedStore<S> {
  readonly store: TopicStore<S>;
  readonly subscribe: (listener: () => void) => () => void;
}

type ByTopic = Map<string, SharedStore<unknown>>;

const cache = new WeakMap<AnyClient, WeakMap<object, ByTopic>>();

function slot(client: AnyClient, reducer: object): ByTopic {
  let byReducer = cache.get(client);
  if (byReducer === undefined) {
    byReducer = new WeakMap();
    cache.set(client, byReducer);
  }
  let byTopic = byReducer.get(reducer);
  if (byTopic === undefined) {
    byTopic = new Map();
    byReducer.set(reducer, byTopic);
  }
  return byTopic;
}

/** The shared store of `topic` built by `reducer` on `client` (made on first use). */
export function sharedStore<S>(client: AnyClient, topic: string, reducer: AnyReducer<S>): SharedStore<S> {
  const stores = slot(client, reducer);
  const cached = stores.get(topic) as SharedStore<S> | undefined;
  if (cached !== undefined) return cached;
  const store = new TopicStore(client, topic, reducer, {
    releaseAfterMs: 0,
    onRelease: () => {
      if (stores.get(topic) === shared) stores.delete(topic);
    },
  });
  const shared: SharedStore<S> = {
    store,
    subscribe: (listener) => {
      if (!stores.has(topic)) stores.set(topic, shared as SharedStore<unknown>);
      return store.subscribe(listener);
    },
  };
  stores.set(topic, shared as SharedStore<unknown>);
  return shared;
}
