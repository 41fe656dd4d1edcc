/**
 * Resending a request whose outcome is unknown, under its idempotency key.
 *
 * Every `request()` carries an `idempotency_key`, fresh per call (docs/protocol.md,
 * "Requests"). When a call fails in a way that leaves its outcome unknown — the
 * connection dropped (`disconnected`), no response in time (`request_timeout`), or the
 * server answered `unavailable` or `timeout` — the client sends it again, with the
 * same key, once it is live again: a server method that honours keys (the demo's
 * writes do) runs it at most once and answers the resend with the first outcome.
 * At most `retries` resends (the client's option, 2 by default, or the call's; 0: none);
 * when they are used up, the call fails with the last of those codes. Other failures
 * (`aborted`, `not_connected`, the method's own codes, …) are never resent.
 *
 * Before each resend the client waits a backoff delay (the client's `backoff`, full
 * jitter, growing per resend), then until it is live again, for at most the call's
 * timeout; a client that stops (`close()`, or a close code whose advice is "never")
 * or does not come back in time fails the call with the last code, and the signal
 * aborting fails it with `aborted`.
 */
import { Backoff, type BackoffOptions } from "./backoff.js";
import type { Clock } from "./env.js";
import { type AbortSignalLike, aborted, ClientRequestFailure, RequestError } from "./requests.js";

/** The codes after which a request may or may not have run: resent with its key. */
export const UNKNOWN_OUTCOME: ReadonlySet<string> = new Set<string>([
  ClientRequestFailure.DISCONNECTED,
  ClientRequestFailure.REQUEST_TIMEOUT,
  "unavailable", // ErrorCode.UNAVAILABLE: PostgreSQL or Redis unreachable (the change may be saved)
  "timeout", // ErrorCode.TIMEOUT: the server cancelled the method (it may have committed)
]);

/** Calls `then(true)` once the client is live, `then(false)` once it is stopped (either
 * at once if it is now); returns what cancels the wait. */
export type UntilLive = (then: (live: boolean) => void) => () => void;

export interface Resend {
  method: string;
  retries: number;
  backoff: BackoffOptions;
  clock: Clock;
  /** Longest wait for the client to be live again, after the backoff delay. */
  liveWithinMs: number;
  signal: AbortSignalLike | undefined;
  untilLive: UntilLive;
}

/** `attempt()` (one sending of the request, always with the same key), and again while
 * it fails with an unknown outcome and resends are left. */
export async function resending<T>(attempt: () => Promise<T>, plan: Resend): Promise<T> {
  const backoff = new Backoff(plan.backoff);
  let last: RequestError | null = null;
  for (let left = plan.retries; ; left -= 1) {
    try {
      return await attempt();
    } catch (error) {
      if (!(error instanceof RequestError)) throw error;
      // A resend that found the client gone again was not sent: the outcome is still the last one's.
      const outcome: RequestError = last !== null && error.code === ClientRequestFailure.NOT_CONNECTED ? last : error;
      if (left <= 0 || !UNKNOWN_OUTCOME.has(outcome.code)) throw outcome;
      last = outcome;
      await pause(plan, backoff.next(), outcome);
    }
  }
}

/** Wait `delayMs`, then until the client is live; rejects with `last` if it stops or
 * does not come back in time, with `aborted` if the signal aborts. */
function pause(plan: Resend, delayMs: number, last: RequestError): Promise<void> {
  const { clock, signal } = plan;
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(aborted(plan.method, signal));
      return;
    }
    let delay: unknown = null;
    let deadline: unknown = null;
    let stopWaiting = (): void => undefined;
    let settled = false;
    const settle = (fn: () => void): void => {
      settled = true;
      clock.clearTimeout(delay);
      clock.clearTimeout(deadline);
      stopWaiting();
      signal?.removeEventListener("abort", onAbort);
      fn();
    };
    const onAbort = (): void => settle(() => reject(aborted(plan.method, signal)));
    signal?.addEventListener("abort", onAbort);
    // A client that is not live now may stop during the delay (close()): fail at once.
    stopWaiting = plan.untilLive((live) => live || settle(() => reject(last)));
    if (settled) return;
    delay = clock.setTimeout(() => {
      delay = null;
      stopWaiting();
      if (Number.isFinite(plan.liveWithinMs)) {
        deadline = clock.setTimeout(() => settle(() => reject(last)), Math.max(0, plan.liveWithinMs));
      }
      stopWaiting = plan.untilLive((live) => settle(live ? resolve : () => reject(last)));
    }, delayMs);
  });
}
