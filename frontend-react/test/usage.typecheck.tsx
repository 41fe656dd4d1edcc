// Type-checked only (never run): the hooks are typed by the registered maps
// (test/register.ts registers the demo's), and what must not compile, each one marked
// with an expected error (tsc fails on an unused one).
import "./register.js";
import type { Session, SessionsSnapshot, TerminalsEvent, Topics } from "@aiohttp-realtime/demo-types";
import type { RealtimeClient } from "@aiohttp-realtime/client";
import {
  type RegisteredClient,
  type TopicReducer,
  type TopicView,
  useConnectionStatus,
  useRequest,
  useTopic,
} from "@aiohttp-realtime/react";
import type { ReactNode } from "react";

type Assert<T extends true> = T;
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;

const sessions: TopicReducer<Topics["sessions.state"], Session[]> = {
  snapshot: (s: SessionsSnapshot) => s.sessions,
  event: (list, e) => (e.op === "upsert" ? [...list, e.session] : list.filter((s) => s.id !== e.id)),
};

export function Usage({ id }: { id: string }): ReactNode {
  const view = useTopic("sessions.state", sessions);
  type _View = Assert<Equal<typeof view, TopicView<Session[]>>>;
  const activity = useTopic(`sessions.activity:${id}`, {
    snapshot: (s) => s.messages,
    event: (m, e) => (e.op === "append" ? [...m, e.message] : m),
  });
  const create = useRequest("sessions.create");
  const send = useRequest("messages.send");
  const status = useConnectionStatus();
  async function submit(): Promise<void> {
    const outcome = await create.call({ title: "Deploy" });
    if (outcome.ok) void outcome.result.created_at;
    else if (outcome.error.code === "quota_exceeded") void outcome.error.message;
    await send.call({ session_id: id, role: "user", text: "hi" }, { timeout: 5000 });
  }
  void submit;
  return (
    <p>
      {view.state?.length} {activity.state?.[0]?.text} {status.state} {create.error?.code}
    </p>
  );
}

export function Misuse(): ReactNode {
  // @ts-expect-error -- the reducer is for sessions.state, not terminals.state
  useTopic("terminals.state", sessions);
  // @ts-expect-error -- no such topic
  useTopic("sessions.stat", sessions);
  useTopic("sessions.state", {
    snapshot: (s) => s.sessions,
    // @ts-expect-error -- a terminals event is not a sessions.state event
    event: (list, e: TerminalsEvent) => list,
  });
  const create = useRequest("sessions.create");
  // @ts-expect-error -- sessions.create takes a title
  void create.call({ name: "x" });
  // @ts-expect-error -- no such method
  useRequest("sessions.explode");
  // @ts-expect-error -- sessions.create does not declare not_found
  void (create.error?.code === "not_found");
  return null;
}

// The provider takes the client of the registered maps, not another one.
declare const other: RealtimeClient<{ "x.y": { snapshot: number; event: number } }>;
// @ts-expect-error -- another app's client
export const wrong: RegisteredClient = other;
