/**
 * A reconnecting client for `/api/realtime`: one WebSocket per tab, typed topics.
 *
 * Guarantees to handlers, per topic: `onSnapshot` replaces the state, then
 * `onEvent` is called with seq = previous + 1 exactly. Anything else is never
 * shown: an event that skips a seq makes the client re-subscribe that topic and
 * wait for its fresh snapshot, and after any reconnect every topic starts again
 * from a snapshot (the server keeps no history to replay).
 *
 * Liveness: a socket that stays silent for `idlePingMs` gets an app-level ping; no
 * pong within `pongTimeoutMs` (or no `hello` within `connectTimeoutMs`) counts as a
 * dead connection, which is how a laptop waking from sleep or a silently dropped
 * network path is noticed. Reconnects follow the close-code catalogue.
 */
import { Backoff, type BackoffOptions, DEFAULT_BACKOFF } from "./backoff.js";
import { reconnectAdvice } from "./closecodes.js";
import type { EventOf, SnapshotOf, TopicName } from "./topics.js";
import { browserClock, type Clock, call, defaultUrl, Listeners, report, type SocketLike } from "./env.js";
import type { ClientMessage, Error as ErrorFrame, Hello, ServerMessage } from "./wire.js";

export type { Clock, ErrorFrame, SocketLike };

export type ConnectionStatus =
  | { state: "idle" }
  | { state: "connecting"; attempt: number }
  | { state: "live"; connectionId: string; hello: Hello }
  /** Waiting before the next attempt; `retryAt` is on the client's clock (Date.now by default). */
  | { state: "reconnecting"; attempt: number; retryAt: number; closeCode: number }
  /** No automatic reconnect: a policy close, or `close()` was called. */
  | { state: "stopped"; closeCode: number; reason: string };

export interface TopicHandlers<T extends TopicName> {
  onSnapshot(payload: SnapshotOf<T>, seq: number): void;
  onEvent(payload: EventOf<T>, seq: number): void;
  /** An `error` frame about this topic (e.g. `unknown_topic`). */
  onError?(error: ErrorFrame): void;
}

export interface ClientOptions {
  /** Default: `ws(s)://<location.host>/api/realtime`, the page's own origin. */
  url?: string;
  backoff?: Partial<BackoffOptions>;
  /** A connection live this long resets the backoff. */
  healthyAfterMs?: number;
  idlePingMs?: number;
  pongTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** After 1001 (server restart) reconnect within this jitter window, not the backoff. */
  goingAwayJitterMs?: number;
  socketFactory?: (url: string) => SocketLike;
  clock?: Clock;
  random?: () => number;
}

export interface GapInfo {
  topic: string;
  expected: number;
  got: number;
}

type AnyHandlers = {
  onSnapshot(payload: unknown, seq: number): void;
  onEvent(payload: unknown, seq: number): void;
  onError?(error: ErrorFrame): void;
};

interface TopicEntry {
  handlers: Set<AnyHandlers>;
  /** Seq of the last snapshot/event applied; null while waiting for a snapshot. */
  lastSeq: number | null;
  retry: Backoff;
  retryTimer: unknown;
}

const MAX_TOPICS_PER_FRAME = 100;

type TimerName = "connect" | "idle" | "pong" | "retry";

export class RealtimeClient {
  private readonly url: string;
  private readonly clock: Clock;
  private readonly random: () => number;
  private readonly backoffOptions: BackoffOptions;
  private readonly backoff: Backoff;
  private readonly opts: Required<
    Pick<ClientOptions, "healthyAfterMs" | "idlePingMs" | "pongTimeoutMs" | "connectTimeoutMs" | "goingAwayJitterMs">
  >;
  private readonly socketFactory: (url: string) => SocketLike;
  private readonly topics = new Map<string, TopicEntry>();
  private readonly statusListeners = new Listeners<ConnectionStatus>();
  private readonly gapListeners = new Listeners<GapInfo>();
  private readonly errorListeners = new Listeners<ErrorFrame>();

  private socket: SocketLike | null = null;
  private current: ConnectionStatus = { state: "idle" };
  private liveSince: number | null = null;
  private readonly timers: Record<TimerName, unknown> = { connect: null, idle: null, pong: null, retry: null };
  private pingCount = 0;
  private awaitedPong: string | null = null;

  constructor(options: ClientOptions = {}) {
    this.url = options.url ?? defaultUrl();
    this.clock = options.clock ?? browserClock;
    this.random = options.random ?? Math.random;
    this.backoffOptions = { ...DEFAULT_BACKOFF, ...options.backoff, random: this.random };
    this.backoff = new Backoff(this.backoffOptions);
    this.opts = {
      healthyAfterMs: options.healthyAfterMs ?? 10_000,
      idlePingMs: options.idlePingMs ?? 15_000,
      pongTimeoutMs: options.pongTimeoutMs ?? 5_000,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      goingAwayJitterMs: options.goingAwayJitterMs ?? 250,
    };
    this.socketFactory = options.socketFactory ?? ((url) => new WebSocket(url) as unknown as SocketLike);
  }

  // ---------------------------------------------------------------- public API

  get status(): ConnectionStatus {
    return this.current;
  }

  /** Open the connection (no-op when already open or waiting to reconnect). */
  connect(): void {
    if (this.socket === null && this.timers.retry === null) {
      this.open();
    }
  }

  /** Close for good: no reconnect until `connect()` is called again. */
  close(): void {
    this.clearTimer("retry");
    const socket = this.detach();
    socket?.close(1000, "client closed");
    this.setStatus({ state: "stopped", closeCode: 1000, reason: "closed by the client" });
  }

  /** Skip the wait: reconnect now if waiting, or probe a live connection with a ping
   * (call it when the browser comes back online or the tab becomes visible). */
  wake(): void {
    if (this.current.state === "reconnecting") {
      this.clearTimer("retry");
      this.open();
    } else if (this.current.state === "live" && this.awaitedPong === null) {
      this.ping();
    }
  }

  /** Subscribe to a topic; returns the function that ends this subscription. */
  subscribe<T extends TopicName>(topic: T, handlers: TopicHandlers<T>): () => void {
    const h = handlers as unknown as AnyHandlers;
    let entry = this.topics.get(topic);
    if (entry === undefined) {
      entry = { handlers: new Set(), lastSeq: null, retry: new Backoff(this.backoffOptions), retryTimer: null };
      this.topics.set(topic, entry);
    }
    entry.handlers.add(h);
    // A new topic needs its snapshot; an existing one is re-subscribed so the new
    // handler gets a snapshot too (a snapshot replaces, so the others don't mind).
    this.resubscribe(topic, entry);
    const current = entry;
    return () => {
      if (!current.handlers.delete(h) || current.handlers.size > 0) return;
      this.clock.clearTimeout(current.retryTimer);
      this.topics.delete(topic);
      if (this.isLive()) this.send({ type: "unsubscribe", topics: [topic] });
    };
  }

  onStatus(fn: (status: ConnectionStatus) => void): () => void {
    const off = this.statusListeners.add(fn);
    fn(this.current);
    return off;
  }

  /** Called when a seq gap was detected (and the topic re-subscribed). */
  onGap(fn: (gap: GapInfo) => void): () => void {
    return this.gapListeners.add(fn);
  }

  /** `error` frames that no topic handler took. */
  onError(fn: (error: ErrorFrame) => void): () => void {
    return this.errorListeners.add(fn);
  }

  // ---------------------------------------------------------------- connection lifecycle

  private open(): void {
    this.clearTimer("retry");
    this.setStatus({ state: "connecting", attempt: this.backoff.attempts });
    let socket: SocketLike;
    try {
      socket = this.socketFactory(this.url);
    } catch (error) {
      report(error);
      this.scheduleReconnect(1006);
      return;
    }
    this.socket = socket;
    socket.onmessage = (ev) => this.socket === socket && this.onMessage(ev.data);
    socket.onclose = (ev) => this.socket === socket && this.onDrop(ev.code);
    socket.onerror = () => undefined; // a close event always follows
    this.setTimer("connect", this.opts.connectTimeoutMs, () => this.dead());
  }

  /** Forget the socket (its late events are ignored) and clear connection timers. */
  private detach(): SocketLike | null {
    const socket = this.socket;
    this.socket = null;
    if (socket !== null) {
      socket.onmessage = socket.onclose = socket.onerror = socket.onopen = null;
    }
    for (const name of ["connect", "idle", "pong"] as const) this.clearTimer(name);
    this.awaitedPong = null;
    for (const entry of this.topics.values()) entry.lastSeq = null; // resync after reconnect
    return socket;
  }

  /** The connection stopped answering: drop it as if the network had closed it. */
  private dead(): void {
    const socket = this.detach();
    try {
      socket?.close();
    } catch (error) {
      report(error);
    }
    this.afterDrop(1006);
  }

  private onDrop(code: number): void {
    this.detach();
    this.afterDrop(code);
  }

  private afterDrop(code: number): void {
    const healthy = this.liveSince !== null && this.clock.now() - this.liveSince >= this.opts.healthyAfterMs;
    this.liveSince = null;
    if (healthy) this.backoff.reset();
    const advice = reconnectAdvice(code);
    if (advice === "never") {
      this.setStatus({ state: "stopped", closeCode: code, reason: "the server asked not to reconnect" });
    } else if (advice === "now") {
      this.scheduleReconnect(code, Math.floor(this.random() * this.opts.goingAwayJitterMs));
    } else {
      this.scheduleReconnect(code);
    }
  }

  private scheduleReconnect(closeCode: number, delay = this.backoff.next()): void {
    const retryAt = this.clock.now() + delay;
    this.setStatus({ state: "reconnecting", attempt: this.backoff.attempts, retryAt, closeCode });
    this.setTimer("retry", delay, () => this.open());
  }

  private onHello(hello: Hello): void {
    this.clearTimer("connect");
    this.liveSince = this.clock.now();
    this.setStatus({ state: "live", connectionId: hello.connection_id, hello });
    const names = [...this.topics.keys()];
    for (let i = 0; i < names.length; i += MAX_TOPICS_PER_FRAME) {
      const [first, ...rest] = names.slice(i, i + MAX_TOPICS_PER_FRAME);
      if (first !== undefined) this.send({ type: "subscribe", topics: [first, ...rest] });
    }
  }

  // ---------------------------------------------------------------- liveness

  private armIdle(): void {
    this.setTimer("idle", this.opts.idlePingMs, () => this.ping());
  }

  private ping(): void {
    this.pingCount += 1;
    const id = `ping-${this.pingCount}`;
    this.awaitedPong = id;
    this.send({ type: "ping", id });
    this.setTimer("pong", this.opts.pongTimeoutMs, () => this.dead());
  }

  // ---------------------------------------------------------------- frames

  private onMessage(data: unknown): void {
    let frame: ServerMessage;
    try {
      frame = JSON.parse(String(data)) as ServerMessage;
    } catch (error) {
      report(error);
      return;
    }
    this.armIdle(); // any frame shows the connection is alive
    switch (frame.type) {
      case "hello":
        return this.onHello(frame);
      case "snapshot":
        return this.onSnapshot(frame.topic, frame.seq, frame.payload);
      case "event":
        return this.onEvent(frame.topic, frame.seq, frame.payload);
      case "error":
        return this.onErrorFrame(frame);
      case "pong":
        if (frame.id === this.awaitedPong) {
          this.awaitedPong = null;
          this.clearTimer("pong");
        }
        return;
    }
  }

  private onSnapshot(topic: string, seq: number, payload: unknown): void {
    const entry = this.topics.get(topic);
    if (entry === undefined) return; // unsubscribed meanwhile
    entry.lastSeq = seq;
    entry.retry.reset();
    for (const h of [...entry.handlers]) call(() => h.onSnapshot(payload, seq));
  }

  private onEvent(topic: string, seq: number, payload: unknown): void {
    const entry = this.topics.get(topic);
    if (entry === undefined || entry.lastSeq === null) return; // no snapshot yet: it will cover this
    if (seq <= entry.lastSeq) return; // already reflected
    if (seq !== entry.lastSeq + 1) {
      const gap = { topic, expected: entry.lastSeq + 1, got: seq };
      this.resubscribe(topic, entry);
      this.gapListeners.emit(gap);
      return;
    }
    entry.lastSeq = seq;
    for (const h of [...entry.handlers]) call(() => h.onEvent(payload, seq));
  }

  private onErrorFrame(error: ErrorFrame): void {
    const entry = error.topic == null ? undefined : this.topics.get(error.topic);
    if (entry === undefined || error.topic == null) {
      this.errorListeners.emit(error);
      return;
    }
    if (error.code === "snapshot_failed") {
      const topic = error.topic;
      this.clock.clearTimeout(entry.retryTimer);
      entry.retryTimer = this.clock.setTimeout(() => this.resubscribe(topic, entry), entry.retry.next());
    }
    const handlers = [...entry.handlers].filter((h) => h.onError !== undefined);
    if (handlers.length === 0) this.errorListeners.emit(error);
    for (const h of handlers) call(() => h.onError?.(error));
  }

  /** Ask for a fresh snapshot; events are ignored until it arrives. */
  private resubscribe(topic: string, entry: TopicEntry): void {
    entry.lastSeq = null;
    if (this.isLive() && this.topics.get(topic) === entry) {
      this.send({ type: "subscribe", topics: [topic] });
    }
  }

  // ---------------------------------------------------------------- helpers

  private isLive(): boolean {
    return this.socket !== null && this.current.state === "live";
  }

  private send(message: ClientMessage): void {
    this.socket?.send(JSON.stringify(message));
  }

  private setStatus(status: ConnectionStatus): void {
    this.current = status;
    this.statusListeners.emit(status);
  }

  private setTimer(name: TimerName, ms: number, fn: () => void): void {
    this.clearTimer(name);
    this.timers[name] = this.clock.setTimeout(() => {
      this.timers[name] = null;
      fn();
    }, ms);
  }

  private clearTimer(name: TimerName): void {
    if (this.timers[name] !== null) {
      this.clock.clearTimeout(this.timers[name]);
      this.timers[name] = null;
    }
  }
}
