/**
 * The demo page's bearer token, when the server has authentication on
 * (`python -m backend --tokens-file FILE`, backend/access.py).
 *
 * Kept in `sessionStorage`: it survives a reload but not the tab, is not shared with
 * other tabs and is not left on disk, as `localStorage` would leave it. Never in a URL:
 * URLs end up in access logs, browser history and `Referer` headers. A script injected
 * into the page could read it either way; the page's CSP (no inline script) is the
 * defence against that, not the choice of storage.
 */

/** The sessionStorage key (the browser tests swap the token under it). */
export const TOKEN_KEY = "realtime-demo.token";

/** The demo server's token alphabet (backend/access.py), which also fits a subprotocol. */
const TOKEN_CHARS = /^[A-Za-z0-9._~-]+$/;

export function storedToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null; // storage disabled: signed out
  }
}

export function storeToken(token: string): void {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken(): void {
  try {
    sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // storage disabled: nothing was kept
  }
}

/** Why `token` cannot be one, or null when it can. Checked before it is sent: a
 * character outside Latin-1 would make `fetch` throw, and one outside the RFC 7230
 * token set cannot be offered as a WebSocket subprotocol. */
export function tokenProblem(token: string): string | null {
  if (token === "") return "Enter a token.";
  return TOKEN_CHARS.test(token) ? null : "A token consists of letters, digits and - _ . ~ only.";
}
