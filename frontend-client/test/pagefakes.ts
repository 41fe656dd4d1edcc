/** Stand-ins for a browser page (`window`, `document`) and for a machine that sleeps. */
import type { DocumentLike, EventTargetLike } from "../src/env.js";
import { ManualClock } from "./fakes.js";

/** An event target that records its listeners and dispatches plain objects. */
export class FakeTarget implements EventTargetLike {
  private readonly listeners = new Map<string, Set<(event: unknown) => void>>();

  addEventListener(type: string, listener: (event: unknown) => void): void {
    let set = this.listeners.get(type);
    if (set === undefined) this.listeners.set(type, (set = new Set()));
    set.add(listener);
  }

  removeEventListener(type: string, listener: (event: unknown) => void): void {
    this.listeners.get(type)?.delete(listener);
  }

  dispatch(type: string, event: object = {}): void {
    for (const listener of [...(this.listeners.get(type) ?? [])]) listener({ type, ...event });
  }

  /** How many listeners are registered, for every type. */
  count(): number {
    let n = 0;
    for (const set of this.listeners.values()) n += set.size;
    return n;
  }
}

export class FakeDocument extends FakeTarget implements DocumentLike {
  visibilityState: "visible" | "hidden" = "visible";

  /** Change the visibility and fire `visibilitychange`, as a browser does. */
  set(state: "visible" | "hidden"): void {
    this.visibilityState = state;
    this.dispatch("visibilitychange");
  }
}

/** A page: `window` and `document`, with the browser's events as methods. */
export class FakePage {
  readonly window = new FakeTarget();
  readonly document = new FakeDocument();

  online(): void {
    this.window.dispatch("online");
  }
  offline(): void {
    this.window.dispatch("offline");
  }
  hide(): void {
    this.document.set("hidden");
  }
  show(): void {
    this.document.set("visible");
  }
  /** Navigating away: into the back/forward cache (`persisted`) or not. */
  pagehide(persisted: boolean): void {
    this.window.dispatch("pagehide", { persisted });
  }
  /** Shown: restored from the back/forward cache (`persisted`), or a first load. */
  pageshow(persisted: boolean): void {
    this.window.dispatch("pageshow", { persisted });
  }
  listeners(): number {
    return this.window.count() + this.document.count();
  }
}

/**
 * A manual clock whose machine can sleep: `sleep(ms)` moves the wall clock (`now()`) on
 * without running anything, and pushes every pending timer back by as much, as timers
 * on a monotonic clock that stops during suspend do. Once awake, `advance` runs them,
 * later than they were due by the clock.
 */
export class SleepyClock extends ManualClock {
  sleep(ms: number): void {
    this.time += ms;
    for (const timer of this.timers.values()) timer.at += ms;
  }
}
