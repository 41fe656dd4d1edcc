/** How each topic's snapshot and events make the state the components show. */
import type { Message, Session, Topics } from "@aiohttp-realtime/demo-types";
import type { TopicReducer } from "@aiohttp-realtime/react";

type ById<T> = ReadonlyMap<string, T>;

const byId = <T extends { id: string }>(items: T[]): ById<T> => new Map(items.map((item) => [item.id, item]));
const without = <T>(map: ById<T>, id: string): ById<T> => {
  if (!map.has(id)) return map; // unchanged: no re-render
  const next = new Map(map);
  next.delete(id);
  return next;
};

/** Sessions by id, oldest first (the snapshot's order; an upsert keeps a session's place). */
export const sessions: TopicReducer<Topics["sessions.state"], ById<Session>> = {
  snapshot: (snapshot) => byId(snapshot.sessions),
  event: (map, e) => (e.op === "upsert" ? new Map(map).set(e.session.id, e.session) : without(map, e.id)),
};

/** A streamed delta extends the text from `offset` (code points); an older one changes nothing. */
function extend(text: string, offset: number, delta: string): string {
  const points = Array.from(text);
  return offset + Array.from(delta).length <= points.length ? text : points.slice(0, offset).join("") + delta;
}

const change = (messages: readonly Message[], id: string, f: (m: Message) => Message) =>
  messages.map((m) => (m.id === id ? f(m) : m));

/** A session's messages, oldest first. */
export const activity: TopicReducer<Topics[`sessions.activity:${string}`], readonly Message[]> = {
  snapshot: (snapshot) => snapshot.messages,
  event: (messages, e) => {
    switch (e.op) {
      case "append":
        return messages.some((m) => m.id === e.message.id)
          ? change(messages, e.message.id, () => e.message)
          : [...messages, e.message].slice(-200);
      case "delta":
        return change(messages, e.message_id, (m) => ({ ...m, text: extend(m.text, e.offset, e.text) }));
      case "end":
        return change(messages, e.message_id, (m) => ({ ...m, text: e.text, streaming: false }));
    }
  },
};
