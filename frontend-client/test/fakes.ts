/** Deterministic stand-ins for the host: a manual clock and scripted sockets. */
import type { Clock, HelloFrame, ServerMessage, SocketLike, WebSocketConstructor } from "../src/index.js";

/** A server's `hello` with every field, for the fakes and the real-socket tests. */
export function helloFrame(id = "c1"): HelloFrame {
  return {
    type: "hello",
    connection_id: id,
    server_time: "2026-01-01T00:00:00Z",
    protocol: 1,
    heartbeat_s: 25,
    max_queue_bytes: 1 << 20,
    max_frame_bytes: 65536,
    max_topics: 100,
    max_snapshot_bytes: 1 << 19,
    frames_per_s: 20,
    subscribes_per_s: 50,
    auth: false,
    max_requests_in_flight: 16,
    request_timeout_s: 10,
  };
}

export class ManualClock implements Clock {
  protected time = 0;
  private nextId = 1;
  protected readonly timers = new Map<number, { at: number; fn: () => void }>();

  now(): number {
    return this.time;
  }

  setTimeout(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.time + ms, fn });
    return id;
  }

  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }

  /** Advance time, firing due timers in order (including ones they schedule). */
  advance(ms: number): void {
    const end = this.time + ms;
    for (;;) {
      const due = [...this.timers.entries()]
        .filter(([, t]) => t.at <= end)
        .sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (due === undefined) break;
      this.timers.delete(due[0]);
      this.time = due[1].at;
      due[1].fn();
    }
    this.time = end;
  }

  pending(): number {
    return this.timers.size;
  }
}

export class FakeSocket implements SocketLike {
  readonly sent: unknown[] = [];
  closedByClient: { code: number | undefined; reason: string | undefined } | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;

  constructor(
    readonly url: string,
    /** The subprotocols offered in the handshake, as the client passed them. */
    readonly protocols?: string | string[],
  ) {}

  send(data: string): void {
    this.sent.push(JSON.parse(data));
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
  }

  // ------------------------------------------------------------ the server's side

  receive(frame: ServerMessage): void {
    this.onmessage?.({ data: JSON.stringify(frame) });
  }

  hello(id = "c1"): void {
    this.receive(helloFrame(id));
  }

  drop(code = 1006, reason = ""): void {
    this.onclose?.({ code, reason });
  }

  /** Frames of one type the client sent, oldest first. */
  sentOf(type: string): Record<string, unknown>[] {
    return (this.sent as Record<string, unknown>[]).filter((f) => f.type === type);
  }
}

/** Hands the client a WebSocket class whose instances it records, newest last. */
export class SocketFactory {
  readonly sockets: FakeSocket[] = [];

  /** The `WebSocket` option: `new WebSocket(url, protocols)` opens a recorded FakeSocket. */
  readonly WebSocket: WebSocketConstructor;

  constructor() {
    const sockets = this.sockets;
    this.WebSocket = class extends FakeSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols);
        sockets.push(this);
      }
    };
  }

  get last(): FakeSocket {
    const socket = this.sockets.at(-1);
    if (socket === undefined) throw new Error("no socket was opened");
    return socket;
  }
}
