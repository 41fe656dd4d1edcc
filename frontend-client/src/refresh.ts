/**
 * In-band token refresh (docs/protocol.md, "Token expiry and in-band refresh"): a connection whose
 * credential expires (`hello.auth_expires_in_s`) presents a new token before then with
 * an `auth` frame, so that it keeps its socket and every subscription, with no gap.
 *
 * Only with a token provider (the `token` option as a function): a fixed string cannot
 * become a new token. One `TokenRefresh` per client, started by each `hello` and
 * stopped when its connection goes (client.ts).
 *
 * When: at a uniform draw within [75 %, 85 %) of the credential's lifetime (a herd of
 * tabs given tokens at the same moment does not refresh in the same instant); each
 * attempt also schedules the next, halfway to the expiry, so a provider that fails,
 * rejects or never settles, or a server that answers `unauthorized`,
 * `principal_changed` or `rate_limited` (or does not answer), is retried twice before
 * the expiry. After that the server closes the connection with 4001 (`auth_expired`,
 * advice `new_token`) and the client reconnects, asking the provider again. `authed`
 * starts the schedule again from its own `auth_expires_in_s` (none: no more refreshes).
 */
import { TOKEN_PROTOCOL_PREFIX, type TokenProvider, withProtocols } from "./auth.js";
import type { Clock } from "./env.js";
import type { AuthedFrame, AuthFrame, ErrorFrame } from "./protocol.js";

/** Attempts after the first, before the credential expires. */
export const REFRESH_RETRIES = 2;
/** The first attempt's share of the credential's lifetime: [low, low + spread). */
const AT_LOW = 0.75;
const AT_SPREAD = 0.1;

export interface RefreshHost {
  clock: Clock;
  random: () => number;
  /** Send the frame on the connection the refresh was started for. */
  send: (frame: AuthFrame) => void;
}

export class TokenRefresh {
  /** Bumped by every start and stop: a provider's late answer for an older schedule is dropped. */
  private epoch = 0;
  private timer: unknown = null;
  private expiresAt = 0;
  private attempts = 0;
  private count = 0;
  /** The ids of this connection's `auth` frames still unanswered. */
  private readonly pending = new Set<string>();

  constructor(
    private readonly provider: TokenProvider | null,
    private readonly host: RefreshHost,
  ) {}

  /** A connection is live (`hello`) or was refreshed (`authed`): schedule the first
   * attempt before its credential expires in `expiresInS` (undefined: it does not). */
  start(expiresInS: number | null | undefined): void {
    this.stop();
    if (this.provider === null || typeof expiresInS !== "number" || !Number.isFinite(expiresInS)) return;
    const now = this.host.clock.now();
    const lifetime = Math.max(0, expiresInS * 1000);
    this.expiresAt = now + lifetime;
    this.attempts = 0;
    this.arm(Math.floor(lifetime * (AT_LOW + AT_SPREAD * this.host.random())));
  }

  /** The connection went: nothing more is sent for it, and late answers are ignored. */
  stop(): void {
    this.epoch += 1;
    this.host.clock.clearTimeout(this.timer);
    this.timer = null;
    this.pending.clear();
  }

  /** An `authed` frame: true when it answers one of ours (then scheduled anew). */
  onAuthed(frame: AuthedFrame): boolean {
    if (!this.pending.has(frame.id)) return false;
    this.start(frame.auth_expires_in_s);
    return true;
  }

  /** An `error` frame: true when it refuses one of our `auth` frames (the next attempt
   * is already scheduled). A `forbidden` with a topic is about that topic, not ours. */
  onError(frame: ErrorFrame): boolean {
    if (frame.id == null || frame.topic != null) return false;
    return this.pending.delete(frame.id);
  }

  private arm(delay: number): void {
    this.host.clock.clearTimeout(this.timer);
    this.timer = this.host.clock.setTimeout(() => this.attempt(), Math.max(0, delay));
  }

  private attempt(): void {
    this.timer = null;
    const now = this.host.clock.now();
    if (now >= this.expiresAt) return; // too late: the server closes (4001) and we reconnect
    this.attempts += 1;
    if (this.attempts <= REFRESH_RETRIES) this.arm((this.expiresAt - now) / 2);
    const epoch = this.epoch;
    withProtocols(
      this.provider ?? undefined,
      (protocols) => {
        const offered = protocols[1];
        if (epoch !== this.epoch || offered === undefined) return; // superseded, or no token: wait for the retry
        this.count += 1;
        const id = `auth-${this.count}`;
        this.pending.add(id);
        this.host.send({ type: "auth", id, token: offered.slice(TOKEN_PROTOCOL_PREFIX.length) });
      },
      () => undefined, // the provider failed: the next attempt is scheduled already
    );
  }
}
