import "./register.js";
import assert from "node:assert/strict";
import { afterEach, beforeEach, describe, it } from "node:test";
import { RealtimeClient, type TopicReducer } from "@aiohttp-realtime/client";
import type { Message, Methods, Session, Topics } from "@aiohttp-realtime/demo-types";
import {
  RealtimeProvider,
  useConnectionStatus,
  useRealtimeClient,
  useRequest,
  useTopic,
} from "@aiohttp-realtime/react";
import { act, cleanup, render, screen } from "@testing-library/react";
import { type ReactNode, StrictMode, useState } from "react";
import { ManualClock, SocketFactory } from "../../frontend-client/test/fakes.js";

const T = "2026-01-01T00:00:00Z";
const session = (id: string, state: Session["state"] = "idle"): Session => ({
  id,
  title: `title ${id}`,
  state,
  created_at: T,
  updated_at: T,
});

const sessionsReducer: TopicReducer<Topics["sessions.state"], readonly Session[]> = {
  snapshot: (snapshot) => snapshot.sessions,
  event: (list, event) =>
    event.op === "upsert"
      ? [...list.filter((s) => s.id !== event.session.id), event.session]
      : list.filter((s) => s.id !== event.id),
};

const activityReducer: TopicReducer<Topics[`sessions.activity:${string}`], readonly Message[]> = {
  snapshot: (snapshot) => snapshot.messages,
  event: (messages, event) => (event.op === "append" ? [...messages, event.message] : messages),
};

let clock: ManualClock;
let sockets: SocketFactory;
let client: RealtimeClient<Topics, Methods>;

beforeEach(() => {
  clock = new ManualClock();
  sockets = new SocketFactory();
  client = new RealtimeClient<Topics, Methods>({
    url: "ws://test/api/realtime",
    clock,
    WebSocket: sockets.WebSocket,
    random: () => 0.999999,
    backoff: { baseMs: 100, capMs: 1000 },
    retries: 0,
    page: null, // happy-dom's window and document: the tests drive the client themselves
  });
});

afterEach(() => cleanup());

/** Connect the client and answer its hello, as a server would. */
function live(): void {
  client.connect();
  sockets.last.hello();
}

/** What the server sends, applied inside act() so React renders it. */
function server(frame: Parameters<typeof sockets.last.receive>[0]): void {
  act(() => sockets.last.receive(frame));
}

function sessionsSnapshot(seq: number, ...ids: string[]) {
  return { type: "snapshot" as const, topic: "sessions.state", seq, payload: { sessions: ids.map((id) => session(id)) } };
}

function upsert(seq: number, id: string, state: Session["state"] = "idle") {
  const payload = { op: "upsert" as const, session: session(id, state) };
  return { type: "event" as const, topic: "sessions.state", seq, payload };
}

/** A timer of 0 ms has run: what the shared stores wait for before they unsubscribe. */
const aTick = () => act(() => new Promise<void>((resolve) => setTimeout(resolve, 5)));

function Sessions({ id = "sessions" }: { id?: string }): ReactNode {
  const { state, status, seq } = useTopic("sessions.state", sessionsReducer);
  return (
    <ul data-testid={id} data-status={status} data-seq={seq ?? "none"}>
      {state?.map((s) => (
        <li key={s.id}>
          {s.title}: {s.state}
        </li>
      ))}
    </ul>
  );
}

function Activity({ sessionId }: { sessionId: string }): ReactNode {
  const { state, status } = useTopic(`sessions.activity:${sessionId}`, activityReducer);
  return <p data-testid="activity" data-status={status}>{state?.map((m) => m.text).join(" / ")}</p>;
}

const subscribes = () => sockets.last.sentOf("subscribe").flatMap((f) => f.topics as string[]);
const unsubscribes = () => sockets.last.sentOf("unsubscribe").flatMap((f) => f.topics as string[]);
const withClient = (children: ReactNode) => <RealtimeProvider client={client}>{children}</RealtimeProvider>;

describe("useTopic", () => {
  it("shows the snapshot, then each event, with the status and seq", () => {
    live();
    render(withClient(<Sessions />));
    const list = screen.getByTestId("sessions");
    assert.equal(list.dataset.status, "syncing");
    server(sessionsSnapshot(3, "a", "b"));
    assert.equal(list.dataset.status, "live");
    assert.deepEqual(
      screen.getAllByRole("listitem").map((li) => li.textContent),
      ["title a: idle", "title b: idle"],
    );
    server(upsert(4, "a", "running"));
    server(upsert(5, "c"));
    assert.deepEqual(
      screen.getAllByRole("listitem").map((li) => li.textContent),
      ["title b: idle", "title a: running", "title c: idle"],
    );
    assert.equal(list.dataset.seq, "5");
  });

  it("subscribes once on the wire under StrictMode, for every component showing the topic", async () => {
    live();
    const view = render(
      <StrictMode>
        {withClient(
          <>
            <Sessions id="one" />
            <Sessions id="two" />
          </>,
        )}
      </StrictMode>,
    );
    await aTick();
    assert.deepEqual(subscribes(), ["sessions.state"]);
    assert.deepEqual(unsubscribes(), []);
    server(sessionsSnapshot(1, "a"));
    assert.equal(screen.getByTestId("one").textContent, "title a: idle");
    assert.equal(screen.getByTestId("two").textContent, "title a: idle");
    view.unmount();
    assert.deepEqual(unsubscribes(), [], "released a tick later, not at once");
    await aTick();
    assert.deepEqual(unsubscribes(), ["sessions.state"]);
    assert.deepEqual(subscribes(), ["sessions.state"]);
  });

  it("keeps the first reducer of a re-rendering component: no new subscription per render", async () => {
    live();
    let bump: () => void = () => undefined;
    function Inline(): ReactNode {
      const [n, setN] = useState(0);
      bump = () => setN((x) => x + 1);
      // A new reducer object on every render: the first one is kept.
      const { state } = useTopic("sessions.state", { snapshot: (s) => s.sessions.length, event: (c) => c });
      return <p data-testid="inline">{`${n} ${state ?? "-"}`}</p>;
    }
    render(withClient(<Inline />));
    server(sessionsSnapshot(1, "a", "b"));
    act(() => bump());
    act(() => bump());
    await aTick();
    assert.equal(screen.getByTestId("inline").textContent, "2 2");
    assert.deepEqual(subscribes(), ["sessions.state"]);
    assert.deepEqual(unsubscribes(), []);
  });

  it("is stale while the connection is down, and live again after the resync's snapshot", () => {
    live();
    render(withClient(<Sessions />));
    server(sessionsSnapshot(1, "a"));
    act(() => sockets.last.drop(1006));
    const list = screen.getByTestId("sessions");
    assert.equal(list.dataset.status, "stale");
    assert.equal(list.textContent, "title a: idle", "the last state stays on screen");
    act(() => clock.advance(100));
    act(() => sockets.last.hello("c2"));
    assert.equal(list.dataset.status, "syncing");
    server(sessionsSnapshot(9, "a", "z"));
    assert.equal(list.dataset.status, "live");
    assert.equal(list.dataset.seq, "9");
    assert.equal(screen.getAllByRole("listitem").length, 2);
  });

  it("follows a parametrised topic: a new session's activity, the old one released", async () => {
    live();
    const view = render(withClient(<Activity sessionId="s1" />));
    const message = (id: string, text: string): Message => ({
      id,
      session_id: "s1",
      role: "user",
      text,
      streaming: false,
      created_at: T,
    });
    server({
      type: "snapshot",
      topic: "sessions.activity:s1",
      seq: 0,
      payload: { session_id: "s1", messages: [message("m1", "hello")] },
    });
    server({ type: "event", topic: "sessions.activity:s1", seq: 1, payload: { op: "append", message: message("m2", "again") } });
    assert.equal(screen.getByTestId("activity").textContent, "hello / again");
    view.rerender(withClient(<Activity sessionId="s2" />));
    assert.equal(screen.getByTestId("activity").dataset.status, "syncing");
    await aTick();
    assert.deepEqual(subscribes(), ["sessions.activity:s1", "sessions.activity:s2"]);
    assert.deepEqual(unsubscribes(), ["sessions.activity:s1"]);
    server({ type: "error", code: "unknown_topic", message: "no such session", topic: "sessions.activity:s2" });
    assert.equal(screen.getByTestId("activity").dataset.status, "error");
  });
});

describe("useRequest", () => {
  function Create(): ReactNode {
    const { call, pending, error, result } = useRequest("sessions.create");
    return (
      <div>
        <button type="button" onClick={() => void call({ title: "Deploy" })}>
          create
        </button>
        <p data-testid="request">
          {pending ? "pending" : "idle"} {result?.title ?? "-"} {error?.code ?? "-"}
        </p>
      </div>
    );
  }

  it("calls the method, pending until its response, then shows the result", async () => {
    live();
    render(withClient(<Create />));
    act(() => screen.getByRole("button").click());
    assert.equal(screen.getByTestId("request").textContent, "pending - -");
    const [request] = sockets.last.sentOf("request");
    assert.equal(request?.method, "sessions.create");
    assert.deepEqual(request?.params, { title: "Deploy" });
    await act(async () => sockets.last.receive({ type: "response", id: String(request?.id), result: session("new") }));
    assert.equal(screen.getByTestId("request").textContent, "idle title new -");
  });

  it("shows the error code of a refused call, and the client's when not connected", async () => {
    live();
    render(withClient(<Create />));
    act(() => screen.getByRole("button").click());
    const [request] = sockets.last.sentOf("request");
    await act(async () =>
      sockets.last.receive({
        type: "response",
        id: String(request?.id),
        error: { code: "quota_exceeded", message: "too many sessions" },
      }),
    );
    assert.equal(screen.getByTestId("request").textContent, "idle - quota_exceeded");
    act(() => client.close());
    await act(async () => screen.getByRole("button").click());
    assert.equal(screen.getByTestId("request").textContent, "idle - not_connected");
  });

  it("returns the outcome, typed, without rejecting", async () => {
    live();
    let create: ReturnType<typeof useRequest<"sessions.create">>["call"] | undefined;
    function Grab(): ReactNode {
      create = useRequest("sessions.create").call;
      return null;
    }
    render(withClient(<Grab />));
    let pending: ReturnType<NonNullable<typeof create>> | undefined;
    act(() => {
      pending = create?.({ title: "x" });
    });
    const [request] = sockets.last.sentOf("request");
    await act(async () => sockets.last.receive({ type: "response", id: String(request?.id), result: session("x") }));
    const outcome = await pending;
    assert.equal(outcome?.ok && outcome.result.id, "x");
  });
});

describe("useConnectionStatus and the provider", () => {
  it("follows the client's status", () => {
    function Status(): ReactNode {
      return <p data-testid="status">{useConnectionStatus().state}</p>;
    }
    render(withClient(<Status />));
    const status = screen.getByTestId("status");
    assert.equal(status.textContent, "idle");
    act(() => client.connect());
    assert.equal(status.textContent, "connecting");
    act(() => sockets.last.hello());
    assert.equal(status.textContent, "live");
    act(() => sockets.last.drop(1006));
    assert.equal(status.textContent, "reconnecting");
  });

  it("the hooks need a RealtimeProvider", () => {
    function Orphan(): ReactNode {
      useRealtimeClient();
      return null;
    }
    const errors: unknown[] = [];
    const consoleError = console.error;
    console.error = (...args: unknown[]) => errors.push(args); // React logs the error it rethrows
    try {
      assert.throws(() => render(<Orphan />), /no RealtimeProvider/);
    } finally {
      console.error = consoleError;
    }
  });
});
