/**
 * @aiohttp-realtime/react: React bindings for @aiohttp-realtime/client. See README.md
 * and docs/client.md ("Stores and React").
 *
 *     const client = new RealtimeClient<Topics, Methods>();
 *     client.connect();
 *     root.render(<RealtimeProvider client={client}><App /></RealtimeProvider>);
 *
 *     const { state, status } = useTopic("sessions.state", sessionsReducer);
 */
export { type RequestHandle, type RequestOutcome, useConnectionStatus, useRequest, useTopic, useTopicStore } from "./hooks.js";
export { RealtimeProvider, type RealtimeProviderProps, useRealtimeClient } from "./provider.js";
export type {
  MethodName,
  Register,
  RegisteredClient,
  RegisteredMethods,
  RegisteredTopics,
  TopicName,
} from "./register.js";
// The store's types, for the reducers and views an app declares.
export type { TopicReducer, TopicStatus, TopicView } from "@aiohttp-realtime/client";
