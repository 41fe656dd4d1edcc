/**
 * The page's life as the client follows it: the network coming back, the tab hidden
 * and shown again, the back/forward cache storing and restoring the page. The events
 * come from the targets of env.ts (in Node there are none: nothing is listened to);
 * what they mean for the connection is decided here, and done by the client through
 * `PageControl` (client.ts).
 *
 * - `online`: reconnect now if waiting (the backoff's wait was for a network that is
 *   back); a socket that looks open is probed with a ping, since it may have died with
 *   the old network. `offline`: probe too, so that a dead socket is noticed, not shown
 *   as live.
 * - Shown again (`visibilitychange`): a hidden tab's timers are throttled, so a
 *   reconnect it was waiting for happens now; a socket that looks open is probed if the
 *   server has been silent for longer than the ping interval (the machine may have
 *   slept). With `pauseWhenHidden`, a tab hidden that long has its topics unsubscribed
 *   on the wire, and subscribed again when shown.
 * - `pagehide` into the back/forward cache: the socket is closed (1000), so the page
 *   may be kept, and nothing reconnects until `pageshow` restores it: then at once,
 *   since whatever socket it had is dead.
 */
import type { Clock, EventTargetLike, PageTargets } from "./env.js";

/** What the page's events make the client do. */
export interface PageControl {
  /** The connection's state (`ConnectionStatus["state"]`). */
  state(): "idle" | "connecting" | "live" | "reconnecting" | "stopped";
  /** Open a new connection now, closing whatever socket there was first. */
  reconnect(): void;
  /** The attempt under way may have started without a network: if it fails, retry at once. */
  retrySoon(): void;
  /** Ping a live connection now: `always`, or only if the server has been silent for
   * longer than the ping interval. */
  probe(always: boolean): void;
  /** Unsubscribe every topic on the wire, keeping the subscriptions. */
  pause(): void;
  /** Subscribe them again (fresh snapshots); nothing if not paused. */
  resume(): void;
  /** Close the socket for the back/forward cache, and wait. */
  store(): void;
}

export function isHidden(page: PageTargets): boolean {
  return page.document?.visibilityState === "hidden";
}

function persisted(event: unknown): boolean {
  return (event as { persisted?: unknown } | null | undefined)?.persisted === true;
}

export class PageLife {
  private hidden = false;
  /** In the back/forward cache (closed by `pagehide`): only `pageshow` reconnects. */
  private stored = false;
  private pauseTimer: unknown = null;
  private readonly added: [EventTargetLike, string, (event: unknown) => void][] = [];

  constructor(
    private readonly page: PageTargets,
    private readonly clock: Pick<Clock, "setTimeout" | "clearTimeout">,
    /** `pauseWhenHidden.afterMs`; null: never pause. */
    private readonly pauseAfterMs: number | null,
    private readonly control: PageControl,
  ) {}

  get watching(): boolean {
    return this.added.length > 0;
  }

  /** Add the listeners (once). */
  start(): void {
    if (this.watching) return;
    this.hidden = isHidden(this.page);
    if (this.hidden) this.armPause();
    const { window, document } = this.page;
    if (window !== undefined) {
      this.on(window, "online", () => this.onOnline());
      this.on(window, "offline", () => this.control.probe(true));
      this.on(window, "pageshow", (event) => persisted(event) && this.onRestored());
      this.on(window, "pagehide", (event) => persisted(event) && this.onStored());
    }
    if (document !== undefined) this.on(document, "visibilitychange", () => this.onVisibility());
  }

  /** Remove every listener and forget the page's state. */
  stop(): void {
    for (const [target, type, listener] of this.added.splice(0)) target.removeEventListener(type, listener);
    this.clock.clearTimeout(this.pauseTimer);
    this.pauseTimer = null;
    this.stored = false;
  }

  /** The client opened a connection (for whatever reason): no longer waiting in the cache. */
  opened(): void {
    this.stored = false;
  }

  private on(target: EventTargetLike, type: string, listener: (event: unknown) => void): void {
    target.addEventListener(type, listener);
    this.added.push([target, type, listener]);
  }

  private onOnline(): void {
    const state = this.control.state();
    if (state === "connecting") this.control.retrySoon();
    else if (state === "reconnecting" && !this.stored) this.control.reconnect();
    else this.control.probe(true);
  }

  private onVisibility(): void {
    const hidden = isHidden(this.page);
    if (hidden === this.hidden) return;
    this.follow(hidden);
    if (hidden) return;
    const state = this.control.state();
    if (state === "connecting") this.control.retrySoon();
    else if (state === "reconnecting" && !this.stored) this.control.reconnect();
    else this.control.probe(false);
  }

  /** Hidden: count down to the pause. Shown: no pause, and resume one that happened. */
  private follow(hidden: boolean): void {
    this.hidden = hidden;
    if (hidden) {
      this.armPause();
      return;
    }
    this.clock.clearTimeout(this.pauseTimer);
    this.pauseTimer = null;
    this.control.resume();
  }

  private armPause(): void {
    if (this.pauseAfterMs === null) return;
    this.clock.clearTimeout(this.pauseTimer);
    this.pauseTimer = this.clock.setTimeout(() => {
      this.pauseTimer = null;
      if (this.hidden) this.control.pause();
    }, this.pauseAfterMs);
  }

  private onStored(): void {
    const state = this.control.state();
    if (state === "idle" || state === "stopped") return;
    this.stored = true;
    this.control.store();
  }

  private onRestored(): void {
    const state = this.control.state();
    if (state === "idle" || state === "stopped") return;
    this.stored = false;
    this.control.reconnect();
    this.follow(isHidden(this.page));
  }
}
