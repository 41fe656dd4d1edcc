/** The dashboard: each panel reads its topic with useTopic and writes with useRequest. */
import type { Session } from "@aiohttp-realtime/demo-types";
import { useConnectionStatus, useRequest, useTopic } from "@aiohttp-realtime/react";
import { type FormEvent, useState } from "react";
import * as reducers from "./reducers.js";

const time = (iso: string) => new Date(iso).toLocaleTimeString();

export function App() {
  const status = useConnectionStatus();
  const { state: sessions, status: freshness } = useTopic("sessions.state", reducers.sessions);
  const [selected, setSelected] = useState<string | null>(null);
  const list = [...(sessions?.values() ?? [])];
  // The selected session, else the first one (also when the selected one was removed).
  const current = list.find((s) => s.id === selected) ?? list[0];
  return (
    <>
      <header>
        <h1>Realtime sessions <span className="muted">· React</span></h1>
        <span className="status" data-state={status.state} role="status">
          {status.state === "live" ? "Live" : status.state === "stopped" ? "Disconnected" : "Connecting…"}
        </span>
      </header>
      <main>
        <section id="sessions-panel" className="panel" data-freshness={freshness}>
          <div className="panel-head">
            <h2>Sessions</h2>
            <CreateSession onCreated={setSelected} />
          </div>
          <table>
            <thead>
              <tr><th>Title</th><th>State</th><th>Updated</th></tr>
            </thead>
            <tbody id="sessions-body">
              {list.map((s) => (
                <tr key={s.id} data-session-id={s.id} data-state={s.state} tabIndex={0}
                    className={s.id === current?.id ? "selected" : ""} onClick={() => setSelected(s.id)}>
                  <td className="title">{s.title}</td>
                  <td><span className={`badge state-${s.state}`}>{s.state}</span></td>
                  <td className="muted">{time(s.updated_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {list.length === 0 && <p className="empty">{freshness === "live" ? "No sessions yet." : "Loading…"}</p>}
        </section>
        {current && <Activity key={current.id} session={current} />}
      </main>
      <footer>
        <span className="muted">sessions.state: {freshness}</span>
      </footer>
    </>
  );
}

function CreateSession({ onCreated }: { onCreated: (id: string) => void }) {
  const create = useRequest("sessions.create");
  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = event.currentTarget;
    const outcome = await create.call({ title: new FormData(form).get("title") as string });
    if (outcome.ok) {
      form.reset();
      onCreated(outcome.result.id); // already in the list: its event came before the response
    }
  }
  return (
    <form className="inline-form" onSubmit={submit}>
      <input name="title" placeholder="New session title" required maxLength={200} aria-label="New session title" />
      <button type="submit" disabled={create.pending}>Create session</button>
      {create.error && <span id="notice">{create.error.code}: {create.error.message}</span>}
    </form>
  );
}

function Activity({ session }: { session: Session }) {
  const { state: messages, status } = useTopic(`sessions.activity:${session.id}`, reducers.activity);
  const send = useRequest("messages.send");
  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = event.currentTarget;
    const text = new FormData(form).get("text") as string;
    if ((await send.call({ session_id: session.id, role: "user", text })).ok) form.reset();
  }
  return (
    <section id="activity-panel" className="panel" data-freshness={status}>
      <div className="panel-head">
        <h2>Activity <span className="muted">{session.title}</span></h2>
      </div>
      <ol id="messages" className="messages">
        {messages?.map((m) => (
          <li key={m.id} data-message-id={m.id} className={`message role-${m.role}${m.streaming ? " streaming" : ""}`}>
            <span className="role">{m.role}</span>
            <span className="text">{m.text}</span>
          </li>
        ))}
      </ol>
      <form className="inline-form" onSubmit={submit}>
        <input name="text" placeholder="Message to the session" required aria-label="Message" />
        <button type="submit" disabled={send.pending}>Send</button>
      </form>
    </section>
  );
}
