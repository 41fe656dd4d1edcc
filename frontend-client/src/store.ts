/**
 * Topic stores: one topic's state, built from its snapshot and events by a reducer,
 * with the topic's freshness, in the shape UI frameworks consume (React's
 * `useSyncExternalStore`, Svelte's and Solid's stores, a plain callback).
 *
 *     const sessions = topicStore(client, "sessions.state", {
 *       snapshot: (s) => s.sessions,                                  // SessionsSnapshot → Session[]
 *       event: (list, e) => (e.op === "upsert" ? upsert(list, e.session) : list.filter((s) => s.id !== e.id)),
 *     });
 *     const stop = sessions.subscribe(() => render(sessions.getSnapshot()));  // subscribes on the wire
 *
 * Built only on the client's public API (`subscribe` with its topic handlers, and
 * `onStatus`), so it keeps the client's guarantees: a snapshot first, then every event
 * with seq = previous + 1, a fresh snapshot after a reconnect, a seq gap or a paused
 * tab shown again.
 *
 * What a store promises its listeners:
 * - `getSnapshot()` returns the same object until something a listener can see
 *   changed (state, status, seq or error); a listener is called only then. An event
 *   the reducer answers with the same state (`===`) changes nothing: no call, and the
 *   view's `seq` stays at the last change (the state it shows is still exact).
 * - It is subscribed on the wire while it has a listener: from the first `subscribe`
 *   until the last listener leaves (at once, or after `releaseAfterMs`), or `dispose()`.
 *   Its state and seq are kept in between; a later listener starts it again, and it
 *   shows the kept state as `stale` / `syncing` until the fresh snapshot.
 */
import type { ConnectionStatus, RealtimeClient, TopicHandlers, TopicMap, TopicPayloads } from "./client.js";
import { call, type Clock, systemClock } from "./env.js";
import type { ErrorFrame } from "./protocol.js";
import type { MethodMap } from "./requests.js";

/**
 * How a store builds its state `S` from one topic's frames; `P` is the topic's entry
 * in the topic map (`Topics["sessions.state"]`), so payloads are typed by the topic and
 * a reducer for another topic's events does not compile.
 *
 * Two functions rather than one `(state | undefined, message) => state`: a snapshot
 * replaces the whole state (it needs no previous one), and an event always applies to
 * a state (the client never delivers one before its topic's snapshot), so neither has
 * an `undefined` to handle.
 */
export interface TopicReducer<P extends TopicPayloads, S> {
  /** The topic's whole state arrived (first subscribe, after a reconnect or a seq gap): build `S` from it. */
  readonly snapshot: (payload: P["snapshot"], seq: number) => S;
  /** The next event (seq = previous + 1): return the next state, or `state` itself when nothing changed.
   * Treat `state` as immutable: listeners compare by identity. */
  readonly event: (state: S, payload: P["event"], seq: number) => S;
}

/**
 * The topic's freshness:
 * - `syncing`: waiting for a snapshot on the current connection (the first one, or a
 *   fresh one after a reconnect or a seq gap); `state` is the last one known, if any.
 * - `live`: `state` reflects the server's, and events apply as they come.
 * - `stale`: the connection is down (reconnecting, or stopped), or the topic is paused
 *   on the wire while the tab is hidden (`pauseWhenHidden`); `state` is the last one
 *   known and may be behind.
 * - `error`: the server refused the topic (`error.code`: `forbidden`, `unknown_topic`,
 *   `snapshot_failed`, …). The client retries the codes that mean "later"
 *   (`snapshot_failed`, `rate_limited`, `unavailable`); a snapshot ends the error.
 */
export type TopicStatus = "syncing" | "live" | "stale" | "error";

/** What `getSnapshot()` returns: a frozen object, replaced (never mutated) on a change. */
export type TopicView<S> = {
  /** Undefined until the first snapshot. */
  readonly state: S | undefined;
  /** The seq of the snapshot or event that last changed `state`; null before the first snapshot. */
  readonly seq: number | null;
} & (
  | { readonly status: "syncing" | "live" | "stale"; readonly error: null }
  | { readonly status: "error"; readonly error: ErrorFrame }
);

export interface TopicStoreOptions {
  /** When the last listener leaves, unsubscribe on the wire after this many ms (a
   * listener that arrives meanwhile keeps the subscription, with no frame sent).
   * Undefined: at once. 0: after the current task, which is what React's StrictMode
   * (unmount and remount in one go) needs; the React bindings use it. */
  releaseAfterMs?: number | undefined;
  /** Timers for `releaseAfterMs`. Default: the host's. */
  clock?: Pick<Clock, "setTimeout" | "clearTimeout"> | undefined;
  /** Called each time the store has unsubscribed on the wire (its last listener left,
   * or `dispose()`): e.g. to drop it from a cache of stores. */
  onRelease?: (() => void) | undefined;
}

type AnyView = { state: unknown; seq: number | null; status: TopicStatus; error: ErrorFrame | null };

const INITIAL = Object.freeze({ state: undefined, seq: null, status: "syncing", error: null } as const);

/** A store for one topic; make one with `topicStore` (typed by the client's topic map). */
export class TopicStore<S> {
  private view: TopicView<S> = INITIAL;
  private readonly listeners = new Set<{ fn: () => void }>();
  /** Ends the wire subscription and the client listeners; null while released. */
  private stop: (() => void) | null = null;
  private releaseTimer: unknown = null;
  private readonly clock: Pick<Clock, "setTimeout" | "clearTimeout">;

  constructor(
    private readonly client: RealtimeClient<TopicMap, MethodMap>,
    readonly topic: string,
    private readonly reducer: TopicReducer<TopicPayloads, S>,
    private readonly options: TopicStoreOptions = {},
  ) {
    this.clock = options.clock ?? systemClock;
  }

  /** The current view: the same object until something in it changed. */
  readonly getSnapshot = (): TopicView<S> => this.view;

  /** Call `listener` after each change; returns what removes it. The first listener
   * subscribes the topic on the wire, the last one to leave unsubscribes it. */
  readonly subscribe = (listener: () => void): (() => void) => {
    const entry = { fn: listener };
    this.listeners.add(entry);
    this.cancelRelease();
    if (this.stop === null) this.start();
    return () => {
      if (this.listeners.delete(entry) && this.listeners.size === 0) this.scheduleRelease();
    };
  };

  /** Whether the store is subscribed on the wire now. */
  get active(): boolean {
    return this.stop !== null;
  }

  /** Unsubscribe on the wire now and forget every listener (a later `subscribe` starts again). */
  dispose(): void {
    this.listeners.clear();
    this.cancelRelease();
    this.release();
  }

  // ---------------------------------------------------------------- the client's side

  private start(): void {
    const handlers: TopicHandlers = {
      onSnapshot: (payload, seq) => this.onSnapshot(payload, seq),
      onEvent: (payload, seq) => this.onEvent(payload, seq),
      onError: (error) => this.set({ status: "error", error }),
      // A fresh snapshot was asked for: first subscribe, reconnect, seq gap, tab shown again.
      onSyncing: () => this.set({ status: "syncing", error: null }),
      // Unsubscribed on the wire while the tab is hidden (pauseWhenHidden).
      onPaused: () => this.set({ status: "stale", error: null }),
    };
    const offStatus = this.client.onStatus((status) => this.onStatus(status));
    const unsubscribe = this.client.subscribe(this.topic, handlers);
    this.stop = () => {
      offStatus();
      unsubscribe();
    };
  }

  private onSnapshot(payload: unknown, seq: number): void {
    this.set({ state: this.reducer.snapshot(payload, seq), seq, status: "live", error: null });
  }

  private onEvent(payload: unknown, seq: number): void {
    const state = this.view.state;
    if (state === undefined) return; // cannot happen: the client sends our snapshot first
    const next = this.reducer.event(state, payload, seq);
    if (next !== state) this.set({ state: next, seq });
  }

  /** The connection went down, or is not up yet. Its coming back is `onSyncing`'s. */
  private onStatus(status: ConnectionStatus): void {
    if (status.state === "live") return;
    const stale =
      status.state === "reconnecting" ||
      status.state === "stopped" ||
      this.view.state !== undefined ||
      this.view.status === "stale";
    this.set({ status: stale ? "stale" : "syncing", error: null });
  }

  // ---------------------------------------------------------------- listeners

  private set(change: Partial<AnyView>): void {
    const old = this.view as AnyView;
    const next = { ...old, ...change };
    if (next.state === old.state && next.seq === old.seq && next.status === old.status && next.error === old.error) {
      return;
    }
    this.view = Object.freeze(next) as TopicView<S>;
    for (const entry of [...this.listeners]) call(entry.fn);
  }

  private scheduleRelease(): void {
    const ms = this.options.releaseAfterMs;
    if (ms === undefined) {
      this.release();
      return;
    }
    this.releaseTimer = this.clock.setTimeout(() => {
      this.releaseTimer = null;
      if (this.listeners.size === 0) this.release();
    }, ms);
  }

  private cancelRelease(): void {
    if (this.releaseTimer !== null) {
      this.clock.clearTimeout(this.releaseTimer);
      this.releaseTimer = null;
    }
  }

  private release(): void {
    const stop = this.stop;
    if (stop === null) return;
    this.stop = null;
    stop();
    // Nothing updates the state now: say so to whoever reads it before the next start.
    if (this.view.status !== "error") this.set({ status: "stale" });
    if (this.options.onRelease !== undefined) call(this.options.onRelease);
  }
}

/**
 * A store of `topic`'s state, built by `reducer` from its snapshot and events, typed
 * by the client's topic map: `topic` must be one of its names (a parametrised one
 * through its pattern: `` `sessions.activity:${id}` ``), and the reducer must take
 * that topic's payloads. Nothing is sent until the store's first listener.
 */
export function topicStore<T extends TopicMap, M extends MethodMap, K extends keyof T & string, S>(
  client: RealtimeClient<T, M>,
  topic: K,
  reducer: TopicReducer<T[K], S>,
  options?: TopicStoreOptions,
): TopicStore<S> {
  // Stored with unknown payloads: the topic picked the reducer's types above.
  const anyClient = client as unknown as RealtimeClient<TopicMap, MethodMap>;
  return new TopicStore(anyClient, topic, reducer as unknown as TopicReducer<TopicPayloads, S>, options);
}

/** The stores of a parametrised topic, one per name: `at(...params)`. */
export interface TopicStoreFamily<A extends readonly unknown[], S> {
  /** The store of the topic these params name: the same object while it is subscribed
   * (or waiting to be released), a new one after. */
  at(...params: A): TopicStore<S>;
}

/**
 * A typed handle for a parametrised topic: `name` maps params to a topic name of the
 * map (so the reducer is typed by the pattern), `at(...)` gives that topic's store,
 * shared while it is in use.
 *
 *     const activity = topicStores(client, (id: string) => `sessions.activity:${id}`, activityReducer);
 *     const store = activity.at(sessionId); // TopicStore<Message[]>
 */
export function topicStores<
  T extends TopicMap,
  M extends MethodMap,
  A extends readonly unknown[],
  K extends keyof T & string,
  S,
>(
  client: RealtimeClient<T, M>,
  name: (...params: A) => K,
  reducer: TopicReducer<T[K], S>,
  options: TopicStoreOptions = {},
): TopicStoreFamily<A, S> {
  const stores = new Map<string, TopicStore<S>>();
  return {
    at(...params: A): TopicStore<S> {
      const topic = name(...params);
      let store = stores.get(topic);
      if (store === undefined) {
        const created = topicStore(client, topic, reducer, {
          ...options,
          onRelease: () => {
            if (stores.get(topic) === created) stores.delete(topic);
            options.onRelease?.();
          },
        });
        stores.set(topic, created);
        store = created;
      }
      return store;
    },
  };
}
