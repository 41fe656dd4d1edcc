/**
 * Tokens for the WebSocket handshake. A browser's `WebSocket` cannot send headers, so a
 * token travels as a second subprotocol offer: `Sec-WebSocket-Protocol: realtime.v1,
 * auth.<token>`. The server selects and echoes only `realtime.v1`, never the token. Not
 * the query string: URLs end up in access logs, browser history and `Referer` headers.
 *
 * A subprotocol must consist of RFC 7230 token characters (letters, digits and
 * ``!#$%&'*+-.^_`|~``; base64url qualifies, standard base64's `/` and `=` do not). A
 * token outside that set is refused here with a `TokenError`, because the browser would
 * otherwise refuse the handshake with a message that quotes the token.
 */

import { report } from "./env.js";

/** The subprotocol of protocol version 1, offered on every connect. */
export const SUBPROTOCOL = "realtime.v1";

/** A token is offered as the subprotocol `auth.<token>`. */
export const TOKEN_PROTOCOL_PREFIX = "auth.";

/** `null` or `undefined`: connect without a token (e.g. the server uses a cookie). */
export type Token = string | null | undefined;

/** Called before every connect and reconnect, so that a token can rotate. */
export type TokenProvider = () => Token | Promise<Token>;

/** A token that cannot be offered as a subprotocol. Its message never contains the token. */
export class TokenError extends Error {
  override readonly name = "TokenError";
}

const TCHARS = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** The subprotocols to offer: `realtime.v1`, and `auth.<token>` when there is a token.
 * Throws `TokenError` for an empty token or one with a character outside the token set. */
export function protocolsFor(token: Token): string[] {
  if (token === null || token === undefined) return [SUBPROTOCOL];
  if (typeof token !== "string") {
    throw new TokenError(`RealtimeClient: a token must be a string, null or undefined, not ${typeof token}`);
  }
  if (!TCHARS.test(token)) throw new TokenError(describeBadToken(token));
  return [SUBPROTOCOL, TOKEN_PROTOCOL_PREFIX + token];
}

function describeBadToken(token: string): string {
  if (token === "") {
    return "RealtimeClient: the token is empty (return null or undefined to connect without one)";
  }
  const chars = [...token];
  const index = chars.findIndex((char) => !TCHARS.test(char));
  const code = chars[index]?.codePointAt(0) ?? 0;
  return (
    `RealtimeClient: the token has a character outside the RFC 7230 token set at index ${index} ` +
    `(U+${code.toString(16).toUpperCase().padStart(4, "0")}), so it cannot travel in Sec-WebSocket-Protocol: ` +
    "use letters, digits and !#$%&'*+-.^_`|~ (e.g. base64url, not base64 or a 'Bearer ' prefix)"
  );
}

function isPromiseLike(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as { then?: unknown } | null)?.then === "function";
}

/**
 * Get the token and call `ok` with the subprotocols to offer, or `fail` with why not
 * (the provider threw or rejected, or its token is invalid). Synchronous for a string
 * or a provider that returns one, so that a plain connect opens its socket at once.
 */
export function withProtocols(
  token: string | TokenProvider | undefined,
  ok: (protocols: string[]) => void,
  fail: (error: unknown) => void,
): void {
  let value: Token | Promise<Token>;
  try {
    value = typeof token === "function" ? token() : token;
  } catch (error) {
    fail(error);
    return;
  }
  const settle = (resolved: unknown): void => {
    let protocols: string[];
    try {
      protocols = protocolsFor(resolved as Token);
    } catch (error) {
      fail(error);
      return;
    }
    ok(protocols);
  };
  // `report`: a throw from `ok` would otherwise be an unhandled rejection.
  if (isPromiseLike(value)) Promise.resolve(value).then(settle, fail).then(undefined, report);
  else settle(value);
}
