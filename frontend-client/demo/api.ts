/** The demo's HTTP API (backend/api.py), at the page's own origin: only signing in
 * asks it (signin.ts); the page's writes go over the socket (`client.request`). */
import type { Session } from "@aiohttp-realtime/demo-types";
import { storedToken } from "./token.js";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** A body is always JSON (the server refuses other writes with 415: a cross-site form
 * can send text/plain without a preflight, never application/json); the token, when
 * the page has one, goes in `Authorization`, never in the URL. */
function headers(body: unknown): Record<string, string> {
  const result: Record<string, string> = {};
  if (body !== undefined) result["Content-Type"] = "application/json";
  const token = storedToken();
  if (token !== null) result.Authorization = `Bearer ${token}`;
  return result;
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    headers: headers(body),
    body: body === undefined ? null : JSON.stringify(body),
  });
  if (!response.ok) {
    const error = (await response.json().catch(() => ({}))) as { error?: string; message?: string };
    throw new ApiError(response.status, error.error ?? "http_error", error.message ?? response.statusText);
  }
  return (await response.json()) as T;
}

export function listSessions(): Promise<Session[]> {
  return request("GET", "/api/sessions");
}
