/** The demo's HTTP API (backend/api.py), at the page's own origin. */
import type { Message, Role, Session } from "@aiohttp-realtime/demo-types";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? null : JSON.stringify(body),
  });
  if (!response.ok) {
    const error = (await response.json().catch(() => ({}))) as { error?: string; message?: string };
    throw new ApiError(response.status, error.error ?? "http_error", error.message ?? response.statusText);
  }
  return (await response.json()) as T;
}

export function createSession(title: string): Promise<Session> {
  return request("POST", "/api/sessions", { title });
}

export function postMessage(sessionId: string, role: Role, text: string): Promise<Message> {
  return request("POST", `/api/sessions/${encodeURIComponent(sessionId)}/messages`, { role, text });
}
