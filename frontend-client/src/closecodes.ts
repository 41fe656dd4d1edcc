/**
 * What to do after the socket closed, per close code. The advice is the server's
 * catalogue, generated into ./protocol.ts as `RECONNECT_ADVICE` (backend/realtime/
 * closecodes.py, `x-reconnect` in close-codes.json): nothing here is copied by hand.
 *
 * Whatever the advice, a reconnect resyncs from fresh snapshots: there is no replay.
 *
 * A close whose advice is "now" (1001 going away, 1012 service restart) may carry a
 * window in its reason, `…; reconnect_within_ms=N` (the server's `reconnect_hint`): the
 * client reconnects after a delay drawn uniformly from [0, N) ms, so that the tabs a
 * restarting server closed do not all come back in the same instant.
 */
import { RECONNECT_ADVICE, type Reconnect } from "./protocol.js";

/** The catalogue's advice for `code`; "backoff" for any code it does not list,
 * including 1006 (dropped without a close frame, seen only locally). */
export function reconnectAdvice(code: number): Reconnect {
  // No prototype property has a numeric name, so a plain lookup is safe.
  return (RECONNECT_ADVICE as { readonly [code: number]: Reconnect | undefined })[code] ?? "backoff";
}

/** A window in a close reason above this is read as this: a hostile or broken server
 * cannot park its clients for long (the server's `MAX_RECONNECT_WITHIN_MS`). */
export const MAX_RECONNECT_WITHIN_MS = 60_000;

/** The server's grammar (`RECONNECT_HINT` in backend/realtime/closecodes.py): at most
 * 9 digits, so a longer number is no hint at all rather than a huge one. */
const RECONNECT_HINT = /\breconnect_within_ms=(\d{1,9})\b/;

/**
 * The reconnect window, in ms, that a close reason gives (`reconnect_within_ms=N`,
 * e.g. `"server restarting; reconnect_within_ms=5000"` → 5000), capped at
 * `MAX_RECONNECT_WITHIN_MS` (60 s); `null` when the reason has none. After a close
 * whose advice is "now", the client draws its reconnect delay uniformly from
 * [0, window).
 */
export function reconnectWithinMs(reason: string | null | undefined): number | null {
  if (typeof reason !== "string") return null;
  const match = RECONNECT_HINT.exec(reason);
  if (match?.[1] === undefined) return null;
  return Math.min(Number(match[1]), MAX_RECONNECT_WITHIN_MS);
}
