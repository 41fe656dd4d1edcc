// PLACEHOLDER until ../frontend-types exists: replaced by re-exports of the generated types.
export type CloseCode = 1000 | 1001 | 1008 | 1009 | 1011 | 4008;
export type ErrorCode = "invalid_json" | "invalid_message" | "unknown_type" | "unknown_topic" | "too_many_topics" | "snapshot_failed";
export interface Subscribe { type: "subscribe"; topics: string[]; id?: string | null }
export interface Unsubscribe { type: "unsubscribe"; topics: string[]; id?: string | null }
export interface Ping { type: "ping"; id?: string | null }
export type ClientMessage = Subscribe | Unsubscribe | Ping;
export interface Hello { type: "hello"; connection_id: string; server_time: string; protocol: 1; heartbeat_s: number; max_queue_bytes: number; max_frame_bytes: number; max_topics: number }
export interface Snapshot { type: "snapshot"; topic: string; seq: number; payload: { [k: string]: unknown } }
export interface Event { type: "event"; topic: string; seq: number; payload: { [k: string]: unknown } }
export interface Error { type: "error"; code: ErrorCode; message: string; id?: string | null; topic?: string | null }
export interface Pong { type: "pong"; id?: string | null }
export type ServerMessage = Hello | Snapshot | Event | Error | Pong;
export type SessionState = "idle" | "running" | "waiting" | "error" | "done";
export interface Session { id: string; title: string; state: SessionState; created_at: string; updated_at: string }
export type Role = "user" | "assistant" | "system";
export interface Message { id: string; session_id: string; role: Role; text: string; streaming: boolean; created_at: string }
export interface Terminal { id: string; name: string; session_id: string | null; status: "starting" | "running" | "exited"; exit_code: number | null; updated_at: string }
export interface SessionsSnapshot { sessions: Session[] }
export type SessionsEvent = { op: "upsert"; session: Session } | { op: "remove"; id: string };
export interface ActivitySnapshot { session_id: string; messages: Message[] }
export type ActivityEvent = { op: "append"; message: Message } | { op: "delta"; message_id: string; offset: number; text: string } | { op: "end"; message_id: string; text: string };
export interface TerminalsSnapshot { terminals: Terminal[] }
export type TerminalsEvent = { op: "upsert"; terminal: Terminal } | { op: "remove"; id: string };
export interface TopicMap {
  "sessions.state": { snapshot: SessionsSnapshot; event: SessionsEvent };
  "sessions.activity:{session_id}": { snapshot: ActivitySnapshot; event: ActivityEvent };
  "terminals.state": { snapshot: TerminalsSnapshot; event: TerminalsEvent };
}
