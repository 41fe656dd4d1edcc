/**
 * The client's seams to its host (a browser, or Node >= 20): the socket, the clock,
 * and where errors go. The client's types use neither the DOM lib nor @types/node:
 * the few host globals it touches are declared here, once.
 */

/** A handler slot on a socket. Declared through a method so that its parameter is
 * compared bivariantly: the DOM's `WebSocket` and the `ws` package's class have
 * richer event types (`MessageEvent`, `CloseEvent`, …) than the fields the client reads. */
type Handler<E> = { handle(ev: E): void }["handle"];

/** The part of a WebSocket the client uses: the browser's `WebSocket`, the `ws`
 * package's class in Node, or a fake in unit tests. */
export interface SocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
}

/** What `new WebSocket(url)` needs to be: `globalThis.WebSocket` in browsers (and in
 * Node >= 22), or `import WebSocket from "ws"` in Node 20. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => SocketLike;

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** An event target of the page (`window`, `document`), or a fake in unit tests.
 * Declared through methods, so the DOM's richer listener types fit as they are. */
export interface EventTargetLike {
  addEventListener(type: string, listener: (event: unknown) => void): void;
  removeEventListener(type: string, listener: (event: unknown) => void): void;
}

/** `document`: an event target with `visibilityState` ("visible", "hidden"). */
export interface DocumentLike extends EventTargetLike {
  readonly visibilityState?: string;
}

/** Where the client hears about the page's life: `window` (`online`, `offline`,
 * `pageshow`, `pagehide`) and `document` (`visibilitychange`). Either may be missing:
 * a worker has no `document`, Node (>= 20) neither. */
export interface PageTargets {
  window?: EventTargetLike | undefined;
  document?: DocumentLike | undefined;
}

/** The host globals the client uses; `WebSocket` and `location` may be missing (Node). */
interface Host {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  queueMicrotask(fn: () => void): void;
  WebSocket?: WebSocketConstructor;
  location?: { protocol: string; host: string };
  /** Web Crypto: browsers (`randomUUID` in secure contexts only: https, localhost), Node >= 19. */
  crypto?: { randomUUID?: () => string; getRandomValues?: (array: Uint8Array) => Uint8Array };
  /** A browser page's or worker's global scope is an event target; Node's is not. */
  addEventListener?: unknown;
  document?: { addEventListener?: unknown };
}

const host = globalThis as unknown as Host;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => host.setTimeout(fn, ms),
  clearTimeout: (handle) => host.clearTimeout(handle),
};

/** `ws(s)://<the page's host>/api/realtime`, the page's own origin. */
export function defaultUrl(): string {
  const location = host.location;
  if (location === undefined) {
    throw new Error(
      "RealtimeClient: no `url` given and there is no `location` to derive it from (not a browser page): " +
        'pass `url`, e.g. new RealtimeClient({ url: "ws://127.0.0.1:8080/api/realtime", WebSocket })',
    );
  }
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/api/realtime`;
}

/** The host's WebSocket class: browsers and Node >= 22 have one; Node 20 does not. */
export function defaultWebSocket(): WebSocketConstructor {
  const WebSocket = host.WebSocket;
  if (WebSocket === undefined) {
    throw new Error(
      "RealtimeClient: this runtime has no global WebSocket (Node 20 has none): pass a WebSocket " +
        'implementation as the `WebSocket` option, e.g. the `ws` package: import WebSocket from "ws"; ' +
        "new RealtimeClient({ url, WebSocket })",
    );
  }
  return WebSocket;
}

function isTarget(value: unknown): value is EventTargetLike {
  const target = value as Partial<Record<"addEventListener" | "removeEventListener", unknown>> | null | undefined;
  return typeof target?.addEventListener === "function" && typeof target.removeEventListener === "function";
}

/** The host's page: its global scope (`window`, or a worker's `self`) and `document`,
 * each only where it is an event target. In Node neither is: no listener is added. */
export function defaultPage(): PageTargets {
  return {
    window: isTarget(host) ? host : undefined,
    document: isTarget(host.document) ? (host.document as DocumentLike) : undefined,
  };
}

/** Rethrow outside the client's call stack: a bug in a handler must surface
 * (as an uncaught error) without breaking the client's own bookkeeping. */
export function report(error: unknown): void {
  host.queueMicrotask(() => {
    throw error;
  });
}

/** A fresh random key (a version 4 UUID) for a request's `idempotency_key`: Web Crypto's
 * `randomUUID`, else 16 bytes of `getRandomValues` (a page served over plain http on a
 * non-local host has only that), else Math.random (no Web Crypto at all). */
export function randomKey(): string {
  const crypto = host.crypto;
  if (typeof crypto?.randomUUID === "function") return crypto.randomUUID();
  const bytes = new Uint8Array(16);
  if (typeof crypto?.getRandomValues === "function") crypto.getRandomValues(bytes);
  else for (let i = 0; i < 16; i += 1) bytes[i] = Math.floor(Math.random() * 256);
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

export class Listeners<A> {
  private readonly fns = new Set<(arg: A) => void>();
  add(fn: (arg: A) => void): () => void {
    this.fns.add(fn);
    return () => this.fns.delete(fn);
  }
  emit(arg: A): void {
    for (const fn of [...this.fns]) call(() => fn(arg));
  }
}

/** Run a callback supplied by the user of the client, reporting what it throws. */
export function call(fn: () => void): void {
  try {
    fn();
  } catch (error) {
    report(error);
  }
}
