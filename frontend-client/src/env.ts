/** The client's seams to the browser: the socket, the clock, and where errors go. */

/** The part of the browser's WebSocket the client uses (a fake in unit tests). */
export interface SocketLike {
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const browserClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
  clearTimeout: (handle) => globalThis.clearTimeout(handle as ReturnType<typeof setTimeout>),
};

export function defaultUrl(): string {
  const { protocol, host } = globalThis.location;
  return `${protocol === "https:" ? "wss:" : "ws:"}//${host}/api/realtime`;
}

/** Rethrow outside the client's call stack: a bug in a handler must surface
 * (as an uncaught error) without breaking the client's own bookkeeping. */
export function report(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
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
