/**
 * How an app types the hooks with its generated maps, once, by declaration merging
 * (as TanStack Router's `Register` does):
 *
 *     import type { Methods, Topics } from "./realtime/index.js"; // generated for your app
 *     declare module "@aiohttp-realtime/react" {
 *       interface Register {
 *         topics: Topics;
 *         methods: Methods;
 *       }
 *     }
 *
 * Then `useTopic("sessions.state", …)` types its reducer by `Topics["sessions.state"]`,
 * `useRequest("sessions.create")` its params and result by `Methods`, and a name the
 * maps do not have does not compile. Unregistered, any name goes, with `unknown`
 * payloads.
 */
import type { MethodMap, RealtimeClient, TopicMap } from "@aiohttp-realtime/client";

/** Augment with `topics` and `methods` (see above); empty here. */
// Empty on purpose: the app fills it in by declaration merging.
export interface Register {}

/** The registered topic map, else any topic. */
export type RegisteredTopics = Register extends { topics: infer T extends TopicMap } ? T : TopicMap;
/** The registered method map, else any method. */
export type RegisteredMethods = Register extends { methods: infer M extends MethodMap } ? M : MethodMap;
/** The client `RealtimeProvider` takes: `RealtimeClient<Topics, Methods>` with the registered maps. */
export type RegisteredClient = RealtimeClient<RegisteredTopics, RegisteredMethods>;
/** A topic name of the registered map (a parametrised one through its pattern). */
export type TopicName = keyof RegisteredTopics & string;
/** A method name of the registered map. */
export type MethodName = keyof RegisteredMethods & string;
