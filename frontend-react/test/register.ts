// The tests' registration of the demo's maps, as an app registers its own.
import type { Methods, Topics } from "@aiohttp-realtime/demo-types";

declare module "@aiohttp-realtime/react" {
  interface Register {
    topics: Topics;
    methods: Methods;
  }
}
