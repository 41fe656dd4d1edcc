/**
 * The Server-Sent Events transport (docs/protocol.md, "Transports: WebSocket and SSE"):
 * the same protocol when a network breaks WebSocket upgrades. Server → client is one
 * `GET <ws url's path>/sse` read with `fetch` as a stream (not `EventSource`: it cannot
 * send an `Authorization` header, and Node has none); client → server is
 * `POST <sse url>/<hello.connection_id>` with the `X-Realtime-Secret` the stream's
 * `hello` gave.
 *
 * `SseSocket` looks like a WebSocket to the client (`SocketLike`), so everything above
 * the transport — hello, subscriptions, requests, pings, token refresh, the page's
 * life — is the same code on both:
 *
 * - each SSE event `data: <frame JSON>` is one `onmessage`; SSE comments (`: ping`, the
 *   server's heartbeat) are skipped;
 * - `event: close` with `data: {"code": N, "reason": "…"}` is an `onclose` with that code
 *   and reason (the close-code catalogue applies as on the WebSocket); a stream that
 *   ends or fails without one, a refused stream (any status but 200), or a POST that
 *   cannot be delivered (a network error, 404 `unknown_connection`: the server no longer
 *   holds the stream, 5xx) is an `onclose` with 1006;
 * - `send` queues; what is queued in the same tick goes in one POST (a JSON array when
 *   there are several frames, at most `MAX_BATCH`), one POST at a time so the server
 *   reads the frames in the order they were sent. A POST refused with another 4xx is a
 *   protocol error of its frames: each is answered locally by an `error` frame (the
 *   response's `{"error": code, "message": …}`, with the frame's `id`), as the server
 *   would have answered it on a WebSocket; the connection goes on.
 */
import { TOKEN_PROTOCOL_PREFIX } from "./auth.js";
import { report, type SocketLike } from "./env.js";

/** Frames in one POST at most; more wait for the next. */
export const MAX_BATCH = 64;

// ---------------------------------------------------------------- host seams (no DOM lib)

/** The part of a `fetch` response the transport reads. */
export interface FetchResponseLike {
  readonly status: number;
  readonly headers?: { get(name: string): string | null } | undefined;
  readonly body: { getReader(): StreamReaderLike } | null;
  text(): Promise<string>;
}

export interface StreamReaderLike {
  read(): Promise<{ done: boolean; value?: Uint8Array | undefined }>;
  cancel(reason?: unknown): Promise<void>;
}

export interface FetchInitLike {
  method: "GET" | "POST";
  headers: Record<string, string>;
  body?: string;
  signal?: unknown;
  cache?: "no-store";
  credentials?: "same-origin";
}

/** `fetch` as the transport calls it: the host's (browsers, Node >= 18), or a fake. */
export type FetchLike = (url: string, init: FetchInitLike) => Promise<FetchResponseLike>;

interface AbortControllerLike {
  readonly signal: unknown;
  abort(): void;
}

interface TextDecoderLike {
  decode(input?: Uint8Array, options?: { stream: boolean }): string;
}

interface SseHost {
  fetch?: FetchLike;
  AbortController?: new () => AbortControllerLike;
  TextDecoder?: new () => TextDecoderLike;
  queueMicrotask(fn: () => void): void;
}

const host = globalThis as unknown as SseHost;

/** The host's `fetch`; throws where there is none. */
export function defaultFetch(): FetchLike {
  const fetch = host.fetch;
  if (typeof fetch !== "function") {
    throw new Error("RealtimeClient: the SSE transport needs `fetch` (browsers, Node >= 18): pass the `fetch` option");
  }
  return (url, init) => fetch.call(globalThis, url, init);
}

/** The SSE endpoint of a WebSocket URL: `ws(s)://h/api/realtime` → `http(s)://h/api/realtime/sse`. */
export function sseUrlFor(wsUrl: string): string {
  const match = /^([^?#]*?)\/*([?#].*)?$/.exec(wsUrl);
  const path = match?.[1] ?? wsUrl;
  return `${path.replace(/^ws(s?):/i, "http$1:")}/sse${match?.[2] ?? ""}`;
}

// ---------------------------------------------------------------- the parser

export interface SseEvent {
  /** The `event:` field; "message" when there was none. */
  event: string;
  /** The `data:` lines, joined with "\n". */
  data: string;
}

/**
 * An incremental `text/event-stream` parser (the WHATWG rules this protocol uses):
 * lines end with LF, CRLF or CR; a line starting with ":" is a comment; `field: value`
 * (one space after the colon removed); an empty line dispatches the event, if it had
 * data. Chunks may split anywhere, a CRLF included. `id` and `retry` are ignored
 * (no replay).
 */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private event = "";
  /** The previous chunk ended with CR: an LF at the start of the next one is its pair. */
  private skipLf = false;

  /** Feed decoded text; returns the events it completed. */
  feed(text: string): SseEvent[] {
    let chunk = text;
    if (this.skipLf && chunk.startsWith("\n")) chunk = chunk.slice(1);
    this.skipLf = false;
    this.buffer += chunk;
    const events: SseEvent[] = [];
    let start = 0;
    for (;;) {
      const cr = this.buffer.indexOf("\r", start);
      const lf = this.buffer.indexOf("\n", start);
      const end = cr === -1 ? lf : lf === -1 ? cr : Math.min(cr, lf);
      if (end === -1) break;
      const line = this.buffer.slice(start, end);
      start = end + 1;
      if (this.buffer[end] === "\r") {
        if (start === this.buffer.length) this.skipLf = true;
        else if (this.buffer[start] === "\n") start += 1;
      }
      const event = this.line(line);
      if (event !== null) events.push(event);
    }
    this.buffer = this.buffer.slice(start);
    return events;
  }

  private line(line: string): SseEvent | null {
    if (line === "") {
      const data = this.data;
      const event = this.event || "message";
      this.data = [];
      this.event = "";
      return data.length === 0 ? null : { event, data: data.join("\n") };
    }
    if (line.startsWith(":")) return null; // a comment: the server's heartbeat
    const colon = line.indexOf(":");
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.data.push(value);
    else if (field === "event") this.event = value;
    return null;
  }
}

// ---------------------------------------------------------------- the socket

type Handler<E> = ((ev: E) => void) | null;

/** A frame's `id`, if it is an object with a string one. */
function frameId(frame: string): string | undefined {
  try {
    const id = (JSON.parse(frame) as { id?: unknown } | null)?.id;
    return typeof id === "string" ? id : undefined;
  } catch {
    return undefined;
  }
}

/** A JSON object's fields, or an empty object for anything else. */
function fields(text: string): Record<string, unknown> {
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** A refused POST's `{"error": code, "message": text}`, as far as it can be read. */
async function refusal(response: FetchResponseLike): Promise<{ code: string; message: string }> {
  let text = "";
  try {
    text = await response.text();
  } catch {
    // no body: the status says enough
  }
  const body = fields(text);
  const code = typeof body.error === "string" ? body.error : "invalid_message";
  const message = typeof body.message === "string" ? body.message : `the server refused the frame (HTTP ${response.status})`;
  return { code, message };
}

export interface SseSocketOptions {
  fetch: FetchLike;
}

/**
 * One SSE connection, shaped like a WebSocket (`SocketLike`). `protocols` are what the
 * client would offer a WebSocket: `realtime.v1` and `auth.<token>`; the token travels
 * as `Authorization: Bearer <token>` here (a fetch can send headers).
 */
export class SseSocket implements SocketLike {
  onopen: Handler<unknown> = null;
  onmessage: Handler<{ data: unknown }> = null;
  onclose: Handler<{ code: number; reason: string }> = null;
  onerror: Handler<unknown> = null;

  private readonly fetch: FetchLike;
  private readonly headers: Record<string, string> = {};
  private readonly abort: AbortControllerLike | null;
  private reader: StreamReaderLike | null = null;
  private ended = false;
  private postUrl: string | null = null;
  private secret: string | null = null;
  private readonly queue: string[] = [];
  private flushing = false;

  constructor(
    readonly url: string,
    protocols: string | string[] | undefined,
    options: SseSocketOptions,
  ) {
    this.fetch = options.fetch;
    const offered = Array.isArray(protocols) ? protocols : protocols === undefined ? [] : [protocols];
    const token = offered.find((p) => p.startsWith(TOKEN_PROTOCOL_PREFIX));
    if (token !== undefined) this.headers.Authorization = `Bearer ${token.slice(TOKEN_PROTOCOL_PREFIX.length)}`;
    this.abort = host.AbortController === undefined ? null : new host.AbortController();
    void this.read();
  }

  send(data: string): void {
    if (this.ended) return;
    this.queue.push(data);
    this.schedule();
  }

  /** Stop reading (the server sees the stream go); no `onclose` follows, as the client
   * has already let go of the socket. */
  close(): void {
    if (this.ended) return;
    this.ended = true;
    this.queue.length = 0;
    this.stopReading();
  }

  private stopReading(): void {
    try {
      this.abort?.abort();
    } catch (error) {
      report(error);
    }
    this.reader?.cancel().catch(() => undefined);
  }

  /** The connection ends: tell the client once. */
  private finish(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.queue.length = 0;
    this.stopReading();
    this.onclose?.({ code, reason });
  }

  private async read(): Promise<void> {
    let response: FetchResponseLike;
    try {
      response = await this.fetch(this.url, {
        method: "GET",
        headers: { Accept: "text/event-stream", ...this.headers },
        signal: this.abort?.signal,
        cache: "no-store",
        credentials: "same-origin",
      });
    } catch {
      this.finish(1006, "the event stream could not be opened");
      return;
    }
    if (this.ended) return;
    if (response.status !== 200 || response.body === null) {
      this.finish(1006, `the event stream was refused (HTTP ${response.status})`);
      return;
    }
    this.onopen?.({});
    const reader = response.body.getReader();
    this.reader = reader;
    const decoder = host.TextDecoder === undefined ? null : new host.TextDecoder();
    const parser = new SseParser();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (this.ended) return;
        if (done) break;
        if (value === undefined) continue;
        const text = decoder === null ? String.fromCharCode(...value) : decoder.decode(value, { stream: true });
        for (const event of parser.feed(text)) {
          this.dispatch(event);
          if (this.ended) return;
        }
      }
    } catch {
      // the network went: below
    }
    this.finish(1006, "the event stream ended without a close event");
  }

  private dispatch(event: SseEvent): void {
    if (event.event === "close") {
      const close = fields(event.data); // a close without a readable code is a drop
      const code = typeof close.code === "number" ? close.code : 1006;
      this.finish(code, typeof close.reason === "string" ? close.reason : "");
      return;
    }
    if (event.event !== "message") return;
    if (this.postUrl === null) this.readHello(event.data);
    this.onmessage?.({ data: event.data });
  }

  /** The first frame is `hello`: where and with what secret to POST. */
  private readHello(data: string): void {
    try {
      const hello = JSON.parse(data) as { type?: unknown; connection_id?: unknown; sse_secret?: unknown };
      if (hello.type !== "hello" || typeof hello.connection_id !== "string") return;
      this.postUrl = `${this.url.replace(/[?#].*$/, "")}/${encodeURIComponent(hello.connection_id)}`;
      this.secret = typeof hello.sse_secret === "string" ? hello.sse_secret : null;
    } catch {
      return; // the client reports the bad frame
    }
    this.schedule();
  }

  /** POST what is queued at the end of this tick (one POST in flight at a time). */
  private schedule(): void {
    if (this.flushing || this.postUrl === null || this.queue.length === 0) return;
    this.flushing = true;
    host.queueMicrotask(() => void this.flush());
  }

  private async flush(): Promise<void> {
    while (!this.ended && this.postUrl !== null && this.queue.length > 0) {
      const frames = this.queue.splice(0, MAX_BATCH);
      const headers: Record<string, string> = { "Content-Type": "application/json", ...this.headers };
      if (this.secret !== null) headers["X-Realtime-Secret"] = this.secret;
      const body = frames.length === 1 ? (frames[0] ?? "") : `[${frames.join(",")}]`;
      let response: FetchResponseLike;
      try {
        response = await this.fetch(this.postUrl, { method: "POST", headers, body, cache: "no-store", credentials: "same-origin" });
      } catch {
        this.finish(1006, "a frame could not be sent");
        break;
      }
      if (this.ended) break;
      if (response.status >= 200 && response.status < 300) continue;
      if (response.status === 404 || response.status >= 500 || response.status < 400) {
        // 404 unknown_connection: the server no longer holds this stream.
        this.finish(1006, `a frame could not be delivered (HTTP ${response.status})`);
        break;
      }
      const { code, message } = await refusal(response);
      for (const frame of frames) {
        if (this.ended) break;
        const id = frameId(frame);
        const error = { type: "error", code, message, ...(id === undefined ? {} : { id }) };
        this.onmessage?.({ data: JSON.stringify(error) });
      }
    }
    this.flushing = false;
  }
}
