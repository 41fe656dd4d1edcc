/**
 * What to do after the socket closed, per close code (the server's catalogue,
 * backend/realtime/closecodes.py). Keyed by the generated `CloseCode` union, so a
 * code added on the server fails the type-check here until its advice is chosen.
 *
 * Whatever the advice, a reconnect resyncs from fresh snapshots: there is no replay.
 */
import type { CloseCode, Reconnect } from "./wire.js";

export type { Reconnect };

export const RECONNECT_ADVICE: Readonly<Record<CloseCode, Reconnect>> = {
  1000: "never", // normal closure, asked for by the client
  1001: "now", // server shutting down or restarting: another node (or the restarted one) answers
  1008: "never", // policy violation (e.g. Origin): reconnecting unchanged fails the same way
  1009: "backoff", // we sent a frame that was too big
  1011: "backoff", // internal error (also: the server lost events and wants a resync)
  4008: "backoff", // slow consumer: our queue overflowed
};

/** Advice for any code, including 1006 (dropped without a close frame, seen only
 * locally) and codes missing from the catalogue: both mean "backoff". */
export function reconnectAdvice(code: number): Reconnect {
  return (RECONNECT_ADVICE as Readonly<Record<number, Reconnect | undefined>>)[code] ?? "backoff";
}
