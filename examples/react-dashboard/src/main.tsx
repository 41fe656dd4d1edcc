/**
 * The React dashboard (GET /react/): the demo page's sessions, activity and terminals,
 * written with @aiohttp-realtime/react. One client for the page, made outside React.
 */
import { type ClientOptions, RealtimeClient } from "@aiohttp-realtime/client";
import type { Methods, Topics } from "@aiohttp-realtime/demo-types";
import { RealtimeProvider } from "@aiohttp-realtime/react";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App.js";

// Types every hook by the app's generated maps: topic names, payloads, methods.
declare module "@aiohttp-realtime/react" {
  interface Register {
    topics: Topics;
    methods: Methods;
  }
}

/** The browser tests shorten the client's timers: ?backoff_ms=100&ping_ms=500&… */
function options(params: URLSearchParams): ClientOptions {
  const ms = (name: string) => Number(params.get(name)) || undefined;
  const baseMs = ms("backoff_ms");
  const backoff = baseMs === undefined ? undefined : { baseMs, capMs: ms("backoff_cap_ms") ?? 30_000 };
  return { backoff, idlePingMs: ms("ping_ms"), pongTimeoutMs: ms("pong_timeout_ms"), connectTimeoutMs: ms("connect_timeout_ms") };
}

const client = new RealtimeClient<Topics, Methods>(options(new URLSearchParams(location.search)));
client.connect();
window.addEventListener("online", () => client.wake());
document.addEventListener("visibilitychange", () => document.hidden || client.wake());

const root = document.getElementById("root");
if (root === null) throw new Error("the page has no #root");
createRoot(root).render(
  <StrictMode>
    <RealtimeProvider client={client}>
      <App />
    </RealtimeProvider>
  </StrictMode>,
);
