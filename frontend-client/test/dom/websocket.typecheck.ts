// Type-checked with the DOM lib (demo/tsconfig.json includes this folder), never run:
// the browser's own WebSocket class is a WebSocketConstructor as it is, no cast.
import type { Topics } from "@aiohttp-realtime/demo-types";
import { RealtimeClient, type WebSocketConstructor } from "../../src/index.js";

type Assert<T extends true> = T;
export type DomWebSocketFits = Assert<typeof WebSocket extends WebSocketConstructor ? true : false>;

export const explicit = (): RealtimeClient<Topics> => new RealtimeClient<Topics>({ WebSocket });
