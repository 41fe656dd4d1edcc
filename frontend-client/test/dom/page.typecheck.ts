// Type-checked with the DOM lib (demo/tsconfig.json includes this folder), never run:
// the browser's own `window` and `document` are the client's page targets as they are.
import type { Topics } from "@aiohttp-realtime/demo-types";
import type { PageTargets } from "../../src/env.js";
import { RealtimeClient } from "../../src/index.js";

export const page: PageTargets = { window, document };

export const explicitPage = (): RealtimeClient<Topics> =>
  new RealtimeClient<Topics>({ page: { window, document }, pauseWhenHidden: { afterMs: 60_000 } });

/** Any DOM event target will do, e.g. a worker's global scope (no document there). */
export const onlyWindow = (scope: EventTarget): RealtimeClient<Topics> =>
  new RealtimeClient<Topics>({ page: { window: scope } });
