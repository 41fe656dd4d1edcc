/**
 * What to do after the socket closed, per close code. The advice is the server's
 * catalogue, generated into ./protocol.ts as `RECONNECT_ADVICE` (backend/realtime/
 * closecodes.py, `x-reconnect` in close-codes.json): nothing here is copied by hand.
 *
 * Whatever the advice, a reconnect resyncs from fresh snapshots: there is no replay.
 */
import { RECONNECT_ADVICE, type Reconnect } from "./protocol.js";

/** The catalogue's advice for `code`; "backoff" for any code it does not list,
 * including 1006 (dropped without a close frame, seen only locally). */
export function reconnectAdvice(code: number): Reconnect {
  // No prototype property has a numeric name, so a plain lookup is safe.
  return (RECONNECT_ADVICE as { readonly [code: number]: Reconnect | undefined })[code] ?? "backoff";
}
