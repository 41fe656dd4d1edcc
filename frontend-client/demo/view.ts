/** Rendering the demo's state into the page. Text goes in as text, never as HTML. */
import type { Message, Session, Terminal } from "@aiohttp-realtime/demo-types";
import type { ConnectionStatus } from "../src/index.js";

type Attrs = Record<string, string>;

export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: (Node | string)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (node === null) throw new Error(`the page has no #${id}`);
  return node as T;
}

function time(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleTimeString();
}

function badge(kind: string, value: string, extra = ""): HTMLElement {
  return el("span", { class: `badge ${kind}-${value}${extra}`, "data-testid": `${kind}-badge` }, value);
}

export function renderSessions(sessions: Session[], selected: string | null): HTMLTableRowElement[] {
  return sessions.map((s) =>
    el(
      "tr",
      {
        "data-session-id": s.id,
        "data-state": s.state,
        class: s.id === selected ? "selected" : "",
        tabindex: "0",
      },
      el("td", { class: "title" }, s.title),
      el("td", {}, badge("state", s.state)),
      el("td", { class: "muted" }, time(s.updated_at)),
    ),
  );
}

export function renderTerminals(terminals: Terminal[], sessions: Map<string, Session>): HTMLTableRowElement[] {
  return terminals.map((t) => {
    const session = t.session_id === null ? undefined : sessions.get(t.session_id);
    return el(
      "tr",
      { "data-terminal-id": t.id, "data-status": t.status },
      el("td", { class: "mono" }, t.name),
      el("td", {}, session?.title ?? (t.session_id === null ? "—" : t.session_id)),
      el("td", {}, badge("terminal", t.status, t.exit_code !== null && t.exit_code !== 0 ? " failed" : "")),
      el("td", { class: "mono" }, t.exit_code === null ? "" : String(t.exit_code)),
    );
  });
}

export function renderMessages(messages: Message[]): HTMLLIElement[] {
  return messages.map((m) =>
    el(
      "li",
      { class: `message role-${m.role}${m.streaming ? " streaming" : ""}`, "data-message-id": m.id },
      el("span", { class: "role" }, m.role),
      el("span", { class: "text" }, m.text),
    ),
  );
}

/** The status line and, while waiting to reconnect, the seconds left. */
export function statusText(status: ConnectionStatus, now: number): string {
  switch (status.state) {
    case "idle":
      return "Not connected";
    case "connecting":
      return status.attempt === 0 ? "Connecting…" : `Connecting… (attempt ${status.attempt + 1})`;
    case "live":
      return status.transport === "sse" ? "Live (SSE)" : "Live";
    case "reconnecting":
      return `Reconnecting in ${Math.max(0, Math.ceil((status.retryAt - now) / 1000))} s`;
    case "stopped":
      return `Disconnected (close code ${status.closeCode})`;
  }
}
