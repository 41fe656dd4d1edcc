/** The client the hooks use, handed down by `RealtimeProvider`. */
import { createContext, type ReactNode, useContext } from "react";
import type { RegisteredClient } from "./register.js";

const RealtimeContext = createContext<RegisteredClient | null>(null);

export interface RealtimeProviderProps {
  /** The app's client. The provider neither connects nor closes it: its life is the
   * app's (create it once, outside React, and call `connect()`), so StrictMode's double
   * effects and a provider that remounts cost no reconnect. */
  client: RegisteredClient;
  children?: ReactNode;
}

/** Makes `client` the one `useTopic`, `useRequest` and `useConnectionStatus` use below it. */
export function RealtimeProvider({ client, children }: RealtimeProviderProps): ReactNode {
  return <RealtimeContext.Provider value={client}>{children}</RealtimeContext.Provider>;
}

/** The provider's client (for what the hooks do not cover: `onGap`, `wake`, …). Throws
 * outside a `RealtimeProvider`. */
export function useRealtimeClient(): RegisteredClient {
  const client = useContext(RealtimeContext);
  if (client === null) {
    throw new Error("@aiohttp-realtime/react: no RealtimeProvider above this component: wrap the app in <RealtimeProvider client={client}>");
  }
  return client;
}
