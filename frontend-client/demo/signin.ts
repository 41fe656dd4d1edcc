/**
 * Signing the demo page in when the server has authentication on.
 *
 * The page asks the HTTP API before it connects (`GET /api/sessions`, with the stored
 * token if there is one), because a browser shows a fetch the status and a WebSocket
 * script none: a handshake refused with 401 looks like a network error (close 1006).
 * A 401 shows the token form. Any other answer (200; 403 for a token that may not read
 * sessions; no answer at all) means the token is not the question, and the page
 * connects: the client copes with outages by itself.
 *
 * While the client waits to reconnect, the API is asked again, unless the last `hello`
 * said the server does not authenticate: an expired or revoked token makes every
 * reconnect fail just like an outage, and only the fetch can tell them apart.
 */
import type { HelloFrame } from "../src/index.js";
import { ApiError, listSessions } from "./api.js";
import { forgetToken, storedToken, storeToken, tokenProblem } from "./token.js";
import { byId } from "./view.js";

export interface SignInHooks {
  /** The API accepts the page (with its token, or without: authentication is off): connect. */
  signedIn(): void;
  /** The page's token is gone or refused: disconnect and forget what it showed. */
  signedOut(): void;
}

export class SignIn {
  /** The last `hello`'s `auth`; null while none arrived since signing in. */
  private serverAuth: boolean | null = null;
  private asking = false;

  constructor(private readonly hooks: SignInHooks) {}

  start(): void {
    const form = byId<HTMLFormElement>("auth-form");
    form.addEventListener("submit", (ev) => {
      ev.preventDefault(); // never a navigation: the token would be in the URL or a body
      const input = form.elements.namedItem("token") as HTMLInputElement;
      const token = input.value.trim();
      const problem = tokenProblem(token);
      if (problem !== null) {
        this.showForm(problem);
        return;
      }
      input.value = "";
      storeToken(token);
      void this.ask();
    });
    byId("sign-out").addEventListener("click", () => this.signOut(""));
    void this.ask();
  }

  /** The connection is live: say as whom, when the server authenticates at all. */
  live(hello: HelloFrame): void {
    this.serverAuth = hello.auth;
    if (!hello.auth) forgetToken(); // nobody asks for it: don't keep it
    byId("account").hidden = !hello.auth;
    byId("principal").textContent = hello.principal ?? "";
  }

  /** The connection dropped and a reconnect is due: does the token still count? */
  reconnecting(): void {
    if (this.serverAuth !== false && !this.asking) void this.ask();
  }

  private async ask(): Promise<void> {
    const token = storedToken();
    let refused: ApiError | null = null;
    this.asking = true;
    try {
      await listSessions();
    } catch (error) {
      if (error instanceof ApiError && error.status === 401) refused = error;
    } finally {
      this.asking = false;
    }
    if (storedToken() !== token) return; // signed in or out meanwhile: that answer counts
    if (refused === null) {
      byId("auth-error").textContent = "";
      byId("auth-panel").hidden = true;
      byId("content").hidden = false;
      this.hooks.signedIn();
    } else {
      this.signOut(token === null ? "" : `The server did not accept the token (${refused.message}).`);
    }
  }

  private signOut(message: string): void {
    forgetToken();
    this.serverAuth = null;
    byId("account").hidden = true;
    this.hooks.signedOut();
    this.showForm(message);
  }

  private showForm(message: string): void {
    byId("content").hidden = true;
    byId("auth-panel").hidden = false;
    byId("auth-error").textContent = message;
    (byId<HTMLFormElement>("auth-form").elements.namedItem("token") as HTMLInputElement).focus();
  }
}
