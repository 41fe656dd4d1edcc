// Type-checked only (never run): docs/client.md's example, and what must not compile.
import { RealtimeClient } from "../src/index.js";
import type { ActivityEvent, ActivitySnapshot, SessionsSnapshot } from "../src/wire.js";

export function usage(): void {
  const client = new RealtimeClient();
  client.onStatus((status) => {
    if (status.state === "reconnecting") void status.retryAt;
  });
  const stop = client.subscribe("sessions.activity:s-1f2e", {
    onSnapshot(snapshot: ActivitySnapshot, seq: number) {
      void snapshot.messages, seq;
    },
    onEvent(event: ActivityEvent) {
      if (event.op === "delta") void event.offset;
    },
    onError(error) {
      void (error.code === "unknown_topic");
    },
  });
  client.connect();
  stop();

  client.subscribe("sessions.state", {
    // @ts-expect-error: sessions.state's snapshot is not an ActivitySnapshot
    onSnapshot(snapshot: ActivitySnapshot) {
      void snapshot;
    },
    onEvent() {},
  });
  // @ts-expect-error: no such topic on the server
  client.subscribe("sessions.nope", { onSnapshot() {}, onEvent() {} });
  client.subscribe("terminals.state", {
    onSnapshot(snapshot) {
      // @ts-expect-error: a terminals snapshot has no sessions
      void (snapshot satisfies SessionsSnapshot);
    },
    onEvent() {},
  });
}
