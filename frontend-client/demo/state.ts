/**
 * The demo page's state, kept equal to the server's by applying each topic's
 * snapshot (replace) and events (idempotent deltas, backend/models.py).
 */
import type {
  ActivityEvent,
  ActivitySnapshot,
  Message,
  Session,
  SessionsEvent,
  SessionsSnapshot,
  Terminal,
  TerminalsEvent,
  TerminalsSnapshot,
} from "@aiohttp-realtime/demo-types";

/** The server's snapshots carry at most this many messages; keep no more. */
export const KEPT_MESSAGES = 200;

/**
 * A streamed text delta: the message's text from `offset` (in Unicode code
 * points, like Python's `len`) starts with `delta`. Applied only when it extends
 * the text; otherwise the text already reflects it (a snapshot can be newer than
 * an event that follows it).
 */
export function applyTextDelta(text: string, offset: number, delta: string): string {
  const points = Array.from(text);
  if (offset + Array.from(delta).length <= points.length) return text;
  return points.slice(0, offset).join("") + delta;
}

function byCreation<T extends { id: string; created_at?: string }>(a: T, b: T): number {
  const at = a.created_at ?? "";
  const bt = b.created_at ?? "";
  return at < bt ? -1 : at > bt ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Items kept by id, replaced by a snapshot and changed by upsert / remove-by-id events. */
class ById<T extends { id: string }> {
  readonly byId = new Map<string, T>();

  constructor(private readonly order: (a: T, b: T) => number) {}

  protected replaceAll(items: readonly T[]): void {
    this.byId.clear();
    for (const item of items) this.byId.set(item.id, item);
  }

  list(): T[] {
    return [...this.byId.values()].sort(this.order);
  }

  clear(): void {
    this.byId.clear();
  }
}

export class SessionsState extends ById<Session> {
  constructor() {
    super(byCreation); // oldest first, the order the server's snapshot lists them in
  }

  replace(snapshot: SessionsSnapshot): void {
    this.replaceAll(snapshot.sessions);
  }

  apply(event: SessionsEvent): void {
    if (event.op === "upsert") this.byId.set(event.session.id, event.session);
    else this.byId.delete(event.id);
  }
}

export class TerminalsState extends ById<Terminal> {
  constructor() {
    super((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  replace(snapshot: TerminalsSnapshot): void {
    this.replaceAll(snapshot.terminals);
  }

  apply(event: TerminalsEvent): void {
    if (event.op === "upsert") this.byId.set(event.terminal.id, event.terminal);
    else this.byId.delete(event.id);
  }
}

export class ActivityState {
  /** Insertion order is the server's order: oldest first. */
  readonly byId = new Map<string, Message>();

  constructor(readonly sessionId: string) {}

  replace(snapshot: ActivitySnapshot): void {
    this.byId.clear();
    for (const m of snapshot.messages) this.byId.set(m.id, m);
  }

  apply(event: ActivityEvent): void {
    switch (event.op) {
      case "append":
        this.byId.set(event.message.id, event.message);
        this.trim();
        return;
      case "delta":
        this.update(event.message_id, (m) => ({ ...m, text: applyTextDelta(m.text, event.offset, event.text) }));
        return;
      case "end":
        this.update(event.message_id, (m) => ({ ...m, text: event.text, streaming: false }));
        return;
    }
  }

  list(): Message[] {
    return [...this.byId.values()];
  }

  private update(id: string, change: (m: Message) => Message): void {
    const message = this.byId.get(id);
    if (message !== undefined) this.byId.set(id, change(message));
  }

  private trim(): void {
    for (const id of this.byId.keys()) {
      if (this.byId.size <= KEPT_MESSAGES) return;
      this.byId.delete(id);
    }
  }
}
