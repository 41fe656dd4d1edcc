/**
 * Reconnect delays: exponential backoff with full jitter (AWS architecture blog,
 * "Exponential Backoff And Jitter"): delay = random(0, min(cap, base * 2^attempt)).
 *
 * Full jitter spreads a herd of tabs that lost the same server over the whole
 * window instead of having them return in lockstep. `attempt` only grows while
 * connections keep failing; the client calls `reset()` once a connection has
 * stayed healthy for a while, so one blip after hours of uptime starts small.
 */

export interface BackoffOptions {
  /** First window, in ms (attempt 0 waits up to this long). */
  baseMs: number;
  /** Largest window, in ms. */
  capMs: number;
  /** Uniform random number in [0, 1). */
  random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 500, capMs: 30_000 };

export class Backoff {
  private attempt = 0;
  private readonly random: () => number;

  constructor(private readonly options: BackoffOptions = DEFAULT_BACKOFF) {
    if (!(options.baseMs > 0) || !(options.capMs >= options.baseMs)) {
      throw new RangeError(`backoff needs 0 < baseMs <= capMs, got ${options.baseMs}, ${options.capMs}`);
    }
    this.random = options.random ?? Math.random;
  }

  /** How many delays were handed out since the last reset. */
  get attempts(): number {
    return this.attempt;
  }

  /** The upper bound of the next delay's window. */
  window(): number {
    // 2 ** attempt overflows to Infinity long after it passed the cap: min() handles it.
    return Math.min(this.options.capMs, this.options.baseMs * 2 ** this.attempt);
  }

  /** The next delay in ms, drawn uniformly from [0, window). */
  next(): number {
    const delay = Math.floor(this.random() * this.window());
    this.attempt += 1;
    return delay;
  }

  reset(): void {
    this.attempt = 0;
  }
}
