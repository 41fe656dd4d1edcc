// Type-checked only (never run): topic stores are typed by the client's topic map, and
// what must not compile, each marked @ts-expect-error (tsc fails on an unused one).
import type {
  ActivityEvent,
  ActivitySnapshot,
  Message,
  Methods,
  Session,
  SessionsEvent,
  SessionsSnapshot,
  TerminalsEvent,
  Topics,
} from "@aiohttp-realtime/demo-types";
import {
  RealtimeClient,
  type TopicReducer,
  type TopicStore,
  type TopicView,
  topicStore,
  topicStores,
} from "../src/index.js";

type Assert<T extends true> = T;
type Equal<A, B> = (<X>() => X extends A ? 1 : 2) extends <X>() => X extends B ? 1 : 2 ? true : false;

declare const client: RealtimeClient<Topics, Methods>;

// A reducer declared apart, typed by its topic's entry in the map.
const sessionsReducer: TopicReducer<Topics["sessions.state"], Session[]> = {
  snapshot: (snapshot: SessionsSnapshot) => snapshot.sessions,
  event: (list, event: SessionsEvent) =>
    event.op === "upsert"
      ? [...list.filter((s) => s.id !== event.session.id), event.session]
      : list.filter((s) => s.id !== event.id),
};
export const sessions = topicStore(client, "sessions.state", sessionsReducer);
export type StoreOfSessions = Assert<Equal<typeof sessions, TopicStore<Session[]>>>;

// Inline: the state type is inferred from `snapshot`, the payloads from the topic.
export const titles = topicStore(client, "sessions.state", {
  snapshot: (s) => s.sessions.map((x) => x.title),
  event: (list, e) => (e.op === "upsert" ? [...list, e.session.title] : list),
});
export type InferredState = Assert<Equal<typeof titles, TopicStore<string[]>>>;

// A parametrised topic: a concrete name is typed through its pattern.
export function activityOf(id: string): TopicStore<readonly Message[]> {
  return topicStore(client, `sessions.activity:${id}`, {
    snapshot: (s: ActivitySnapshot): readonly Message[] => s.messages,
    event: (messages, e: ActivityEvent) => (e.op === "append" ? [...messages, e.message] : messages),
  });
}

// The typed handle for a parametrised topic: params in, the topic's store out.
export const activity = topicStores(client, (id: string) => `sessions.activity:${id}`, {
  snapshot: (s) => s.messages,
  event: (messages, e) => (e.op === "append" ? [...messages, e.message] : messages),
});
export type FamilyStore = Assert<Equal<ReturnType<typeof activity.at>, TopicStore<Message[]>>>;

// The view: `error` is there exactly when the status is "error".
export function describe(view: TopicView<Session[]>): string {
  if (view.status === "error") return view.error.code;
  // @ts-expect-error -- no error unless the status is "error"
  void view.error.code;
  return `${view.status} ${view.seq ?? "-"} ${view.state?.length ?? 0}`;
}

// What must not compile.
topicStore(client, "sessions.state", {
  snapshot: (s) => s.sessions,
  // @ts-expect-error -- a terminals event is not a sessions.state event
  event: (list, e: TerminalsEvent) => list,
});
topicStore(client, "sessions.state", {
  // @ts-expect-error -- a sessions.state snapshot has no `messages`
  snapshot: (s) => s.messages,
  event: (list) => list,
});
// @ts-expect-error -- the reducer is for another topic
topicStore(client, "terminals.state", sessionsReducer);
// @ts-expect-error -- no such topic
topicStore(client, "sessions.stat", sessionsReducer);
// @ts-expect-error -- the event must return the snapshot's state type
topicStore(client, "sessions.state", { snapshot: (s) => s.sessions, event: () => "not a list" });
// @ts-expect-error -- no such pattern
topicStores(client, (id: string) => `sessions.nothing:${id}`, sessionsReducer);
