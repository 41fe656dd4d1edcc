/**
 * The wire types, all generated from the server's Pydantic models into
 * ../frontend-types (scripts/generate-types). This module only re-exports them
 * (and names a few of their parts), so the client has one import path for them.
 */
export type * from "../../frontend-types/index.js";

import type { Message, Session, Terminal } from "../../frontend-types/index.js";

export type Role = Message["role"];
export type SessionState = Session["state"];
export type TerminalStatus = Terminal["status"];
