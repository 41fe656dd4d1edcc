/**
 * The demo page (`GET /`): live sessions, the selected session's activity, the
 * terminals and the connection status, all kept by one `RealtimeClient`. With
 * authentication on, the page signs in first (signin.ts) and the client asks for the
 * stored token before every connect, so a new token counts from the next reconnect.
 *
 * Its forms write over the same socket: `client.request("sessions.create", …)` and
 * `messages.send`, typed by the generated method map. When a request resolves, the
 * page's state already shows its change (the server sends a method's events before
 * its response). Only signing in asks the HTTP API (signin.ts).
 *
 * Query parameters tune the client (the browser tests use them to make a network
 * cut last seconds, not minutes): `backoff_ms`, `backoff_cap_ms`, `ping_ms`,
 * `pong_timeout_ms`, `connect_timeout_ms`, `healthy_ms`, `pause_when_hidden_ms`
 * (the client's `pauseWhenHidden`: unsubscribe after the tab was hidden that long), and
 * for the transports `transport` (`auto`, `websocket`, `sse`), `sse_after` (the client's
 * `sseAfterFailures`) and `ws_retry_ms` (on SSE, try a WebSocket again after this long:
 * `wsRetry.initialMs`, and `maxMs` too, so it keeps trying that often).
 *
 * The client follows the page's life by itself (`online`, the tab shown again, the
 * back/forward cache). What the browser tests read, on `#status`: `data-state` (the
 * connection's), `data-connection` (its id), `data-transport` (`websocket` or `sse`: the
 * live connection's, or the one being tried), `data-paused` ("true" while the topics
 * are unsubscribed because the tab is hidden) and `data-snapshots` (how many
 * `sessions.state` snapshots the page has applied).
 */
import type { Methods, Topics } from "@aiohttp-realtime/demo-types";
import { type ClientOptions, type ConnectionStatus, isRequestError, RealtimeClient } from "../src/index.js";
import { ApiError } from "./api.js";
import { SignIn } from "./signin.js";
import { ActivityState, SessionsState, TerminalsState } from "./state.js";
import { storedToken } from "./token.js";
import { byId, renderMessages, renderSessions, renderTerminals, statusText } from "./view.js";

function numberParam(params: URLSearchParams, name: string): number | undefined {
  const raw = params.get(name);
  const value = raw === null ? Number.NaN : Number(raw);
  return Number.isFinite(value) && value > 0 ? value : undefined;
}

function clientOptions(search: string): ClientOptions {
  const params = new URLSearchParams(search);
  const base = numberParam(params, "backoff_ms");
  const cap = numberParam(params, "backoff_cap_ms");
  const options: ClientOptions = {};
  if (base !== undefined || cap !== undefined) {
    const baseMs = base ?? 500;
    options.backoff = { baseMs, capMs: Math.max(baseMs, cap ?? 30_000) };
  }
  const ping = numberParam(params, "ping_ms");
  const pong = numberParam(params, "pong_timeout_ms");
  const healthy = numberParam(params, "healthy_ms");
  const connect = numberParam(params, "connect_timeout_ms");
  if (ping !== undefined) options.idlePingMs = ping;
  if (connect !== undefined) options.connectTimeoutMs = connect;
  if (pong !== undefined) options.pongTimeoutMs = pong;
  if (healthy !== undefined) options.healthyAfterMs = healthy;
  const pause = numberParam(params, "pause_when_hidden_ms");
  if (pause !== undefined) options.pauseWhenHidden = { afterMs: pause };
  const transport = params.get("transport");
  if (transport === "auto" || transport === "websocket" || transport === "sse") options.transport = transport;
  const sseAfter = numberParam(params, "sse_after");
  if (sseAfter !== undefined) options.sseAfterFailures = sseAfter;
  const wsRetry = numberParam(params, "ws_retry_ms");
  if (wsRetry !== undefined) options.wsRetry = { initialMs: wsRetry, maxMs: wsRetry };
  return options;
}

class DemoPage {
  private readonly client = new RealtimeClient<Topics, Methods>({
    ...clientOptions(location.search),
    token: storedToken,
  });
  private readonly signIn = new SignIn({ signedIn: () => this.client.connect(), signedOut: () => this.signedOut() });
  private readonly sessions = new SessionsState();
  private readonly terminals = new TerminalsState();
  private activity: ActivityState | null = null;
  private selectedSeen = false;
  private stopActivity: (() => void) | null = null;
  private status: ConnectionStatus = { state: "idle" };
  private resyncs = 0;
  private snapshots = 0;
  private renderQueued = false;
  private statusTicker: ReturnType<typeof setInterval> | null = null;

  start(): void {
    this.client.onStatus((status) => this.onStatus(status));
    this.client.onGap((gap) => {
      this.resyncs += 1;
      console.info(`seq gap on ${gap.topic} (expected ${gap.expected}, got ${gap.got}): resyncing`);
      this.queueRender();
    });
    this.client.onError((error) => this.notice(`server: ${error.code}: ${error.message}`));
    this.client.subscribe("sessions.state", {
      onSnapshot: (payload) => {
        this.snapshots += 1;
        this.debug("snapshots", String(this.snapshots));
        this.changed(() => this.sessions.replace(payload), true);
      },
      onEvent: (payload) => this.changed(() => this.sessions.apply(payload), true),
      onPaused: () => this.debug("paused", "true"),
      onSyncing: () => this.debug("paused", "false"),
    });
    this.client.subscribe("terminals.state", {
      onSnapshot: (payload) => this.changed(() => this.terminals.replace(payload)),
      onEvent: (payload) => this.changed(() => this.terminals.apply(payload)),
    });
    this.bindForms();
    this.signIn.start(); // connects once the API accepts the page
  }

  /** Disconnect, and show nothing the next token may not be allowed to see. */
  private signedOut(): void {
    this.client.close();
    this.select(null);
    this.sessions.clear();
    this.terminals.clear();
    this.notice("");
    this.onStatus({ state: "idle" });
    this.queueRender();
  }

  // ---------------------------------------------------------------- selection

  private select(sessionId: string | null): void {
    if (sessionId === (this.activity?.sessionId ?? null)) return;
    this.stopActivity?.();
    this.stopActivity = null;
    this.selectedSeen = sessionId !== null && this.sessions.byId.has(sessionId);
    this.activity = sessionId === null ? null : new ActivityState(sessionId);
    const activity = this.activity;
    if (activity !== null) {
      this.stopActivity = this.client.subscribe(`sessions.activity:${activity.sessionId}`, {
        onSnapshot: (payload) => this.changed(() => activity.replace(payload)),
        onEvent: (payload) => this.changed(() => activity.apply(payload)),
        onError: (error) => {
          this.notice(`activity: ${error.code}: ${error.message}`);
          if (error.code === "unknown_topic" && this.activity === activity) {
            this.selectedSeen = true; // gone: let fixSelection move on
            this.fixSelection();
          }
        },
      });
    }
    this.queueRender();
  }

  /** Select the first session when none is, and move on when the selected one is
   * removed. A session selected before it arrived (its topic not live yet when it was
   * created) stays selected until it was seen and then removed. */
  private fixSelection(): void {
    const current = this.activity?.sessionId ?? null;
    if (current !== null && this.sessions.byId.has(current)) {
      this.selectedSeen = true;
      return;
    }
    if (current !== null && !this.selectedSeen) return;
    this.select(this.sessions.list()[0]?.id ?? null);
  }

  // ---------------------------------------------------------------- rendering

  private changed(apply: () => void, sessionsChanged = false): void {
    apply();
    if (sessionsChanged) this.fixSelection();
    this.queueRender();
  }

  private onStatus(status: ConnectionStatus): void {
    this.status = status;
    if (status.state === "live") this.signIn.live(status.hello);
    if (status.state === "reconnecting") this.signIn.reconnecting();
    if (status.state === "reconnecting" && this.statusTicker === null) {
      this.statusTicker = setInterval(() => this.renderStatus(), 250);
    } else if (status.state !== "reconnecting" && this.statusTicker !== null) {
      clearInterval(this.statusTicker);
      this.statusTicker = null;
    }
    this.renderStatus();
  }

  private queueRender(): void {
    if (this.renderQueued) return;
    this.renderQueued = true;
    requestAnimationFrame(() => {
      this.renderQueued = false;
      this.render();
    });
  }

  private renderStatus(): void {
    const node = byId("status");
    node.textContent = statusText(this.status, Date.now());
    node.dataset.state = this.status.state;
    if (this.status.state === "live") node.dataset.connection = this.status.connectionId;
    if ("transport" in this.status) node.dataset.transport = this.status.transport;
  }

  /** A data attribute of `#status` for the browser tests (see the top of this file). */
  private debug(name: "paused" | "snapshots", value: string): void {
    byId("status").dataset[name] = value;
  }

  private render(): void {
    const selected = this.activity?.sessionId ?? null;
    const sessions = this.sessions.list();
    byId("sessions-body").replaceChildren(...renderSessions(sessions, selected));
    byId("sessions-empty").hidden = sessions.length > 0;
    const terminals = this.terminals.list();
    byId("terminals-body").replaceChildren(...renderTerminals(terminals, this.sessions.byId));
    byId("terminals-empty").hidden = terminals.length > 0;
    const session = selected === null ? undefined : this.sessions.byId.get(selected);
    byId("activity-title").textContent = session?.title ?? "";
    const messages = this.activity?.list() ?? [];
    byId("messages").replaceChildren(...renderMessages(messages));
    byId("messages-empty").hidden = messages.length > 0 || selected === null;
    byId<HTMLFieldSetElement>("message-fields").disabled = selected === null;
    byId("resyncs").textContent = String(this.resyncs);
  }

  private notice(text: string): void {
    byId("notice").textContent = text;
  }

  // ---------------------------------------------------------------- actions

  private bindForms(): void {
    byId("sessions-body").addEventListener("click", (ev) => {
      const row = (ev.target as Element).closest("tr[data-session-id]");
      if (row instanceof HTMLElement) this.select(row.dataset.sessionId ?? null);
    });
    byId("sessions-body").addEventListener("keydown", (ev) => {
      const row = (ev.target as Element).closest("tr[data-session-id]");
      if (ev.key === "Enter" && row instanceof HTMLElement) this.select(row.dataset.sessionId ?? null);
    });
    this.onSubmit("create-form", async (form) => {
      const input = form.elements.namedItem("title") as HTMLInputElement;
      const session = await this.client.request("sessions.create", { title: input.value });
      input.value = "";
      this.select(session.id); // already in the list: its event came before the response
    });
    this.onSubmit("message-form", async (form) => {
      const input = form.elements.namedItem("text") as HTMLInputElement;
      const sessionId = this.activity?.sessionId;
      if (sessionId === undefined) return;
      await this.client.request("messages.send", { session_id: sessionId, role: "user", text: input.value });
      input.value = "";
    });
  }

  /** Run a form's action (a request over the socket); a failure shows as a notice with
   * its code: the server's (`forbidden`, `rate_limited`, `quota_exceeded`, …) or the
   * client's (`not_connected`, `disconnected`: the outcome is then unknown, and the
   * resynced list shows whether it happened). */
  private onSubmit(id: string, action: (form: HTMLFormElement) => Promise<void>): void {
    const form = byId<HTMLFormElement>(id);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.notice("");
      action(form).catch((error: unknown) => {
        const message =
          isRequestError(error) || error instanceof ApiError ? `${error.code}: ${error.message}` : String(error);
        this.notice(`Could not save: ${message}`);
      });
    });
  }
}

new DemoPage().start();
