/** A scripted `fetch` for the SSE transport: event streams the test writes to, POSTs it answers. */
import type { FetchInitLike, FetchLike, FetchResponseLike, ServerMessage, StreamReaderLike } from "../src/index.js";
import { helloFrame } from "./fakes.js";

const encoder = new TextEncoder();

/** Let pending promises (the transport's reads and POSTs) run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i += 1) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** One `GET …/sse`: the server's side of an event stream. */
export class FakeStream {
  private readonly chunks: Uint8Array[] = [];
  private waiting: ((r: { done: boolean; value?: Uint8Array }) => void) | null = null;
  private failWaiting: ((error: unknown) => void) | null = null;
  ended = false;
  cancelled = false;
  aborted = false;

  constructor(
    readonly url: string,
    readonly init: FetchInitLike,
  ) {
    const signal = init.signal as { addEventListener?: (t: string, f: () => void) => void } | undefined;
    signal?.addEventListener?.("abort", () => {
      this.aborted = true;
      this.fail(new Error("aborted"));
    });
  }

  readonly reader: StreamReaderLike = {
    read: () => {
      const chunk = this.chunks.shift();
      if (chunk !== undefined) return Promise.resolve({ done: false, value: chunk });
      if (this.ended) return Promise.resolve({ done: true });
      return new Promise((resolve, reject) => {
        this.waiting = resolve;
        this.failWaiting = reject;
      });
    },
    cancel: () => {
      this.cancelled = true;
      this.end();
      return Promise.resolve();
    },
  };

  /** Raw text, as the server writes it (any split). */
  write(text: string): void {
    const value = encoder.encode(text);
    const waiting = this.waiting;
    this.waiting = this.failWaiting = null;
    if (waiting !== null) waiting({ done: false, value });
    else this.chunks.push(value);
  }

  frame(frame: ServerMessage | Record<string, unknown>): void {
    this.write(`data: ${JSON.stringify(frame)}\n\n`);
  }

  hello(id = "c1", secret = "s3cret"): void {
    this.frame({ ...helloFrame(id), transport: "sse", sse_secret: secret });
  }

  close(code: number, reason = ""): void {
    this.write(`event: close\ndata: ${JSON.stringify({ code, reason })}\n\n`);
    this.end();
  }

  end(): void {
    this.ended = true;
    const waiting = this.waiting;
    this.waiting = this.failWaiting = null;
    waiting?.({ done: true });
  }

  fail(error: unknown = new TypeError("network error")): void {
    const failing = this.failWaiting;
    this.waiting = this.failWaiting = null;
    failing?.(error);
  }
}

export interface Post {
  url: string;
  headers: Record<string, string>;
  body: unknown;
}

/** The `fetch` option: GETs open a FakeStream, POSTs are recorded and answered by `answer`. */
export class FakeFetch {
  readonly streams: FakeStream[] = [];
  readonly posts: Post[] = [];
  /** How a GET is answered: a stream (200) by default. */
  streamStatus = 200;
  /** A GET that throws (network down). */
  getFails = false;
  answer: (post: Post) => { status: number; body?: string } | Promise<{ status: number; body?: string }> | "network-error" =
    () => ({ status: 202 });

  readonly fetch: FetchLike = async (url, init) => {
    if (init.method === "GET") {
      if (this.getFails) throw new TypeError("Failed to fetch");
      const stream = new FakeStream(url, init);
      this.streams.push(stream);
      return response(this.streamStatus, "", stream.reader);
    }
    const post = { url, headers: init.headers, body: JSON.parse(init.body ?? "null") as unknown };
    this.posts.push(post);
    const answer = await this.answer(post);
    if (answer === "network-error") throw new TypeError("Failed to fetch");
    return response(answer.status, answer.body ?? "", null);
  };

  get last(): FakeStream {
    const stream = this.streams.at(-1);
    if (stream === undefined) throw new Error("no stream was opened");
    return stream;
  }

  /** Every client frame POSTed, flattened, oldest first. */
  frames(): Record<string, unknown>[] {
    return this.posts.flatMap((p) => (Array.isArray(p.body) ? p.body : [p.body])) as Record<string, unknown>[];
  }
}

function response(status: number, text: string, reader: StreamReaderLike | null): FetchResponseLike {
  return {
    status,
    body: reader === null ? null : { getReader: () => reader },
    text: () => Promise.resolve(text),
  };
}
