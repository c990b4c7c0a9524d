// One urql client: queries and mutations over HTTP with the in-memory access token,
// subscriptions over graphql-ws (graphql-transport-ws), whose credentials go in the
// connection_init payload because browsers cannot set WebSocket headers.
import { createClient as createWsClient, type Client as WsClient } from "graphql-ws";
import { cacheExchange, Client, fetchExchange, subscriptionExchange } from "urql";
import { getAccessToken } from "./session";

export type ConnectionState = "connecting" | "connected" | "reconnecting";
type StateListener = (state: ConnectionState) => void;

const stateListeners = new Set<StateListener>();
const reconnectListeners = new Set<() => void>();
let connectionState: ConnectionState = "connecting";
let everConnected = false;

function setConnectionState(state: ConnectionState): void {
  const previous = connectionState;
  connectionState = state;
  for (const listener of stateListeners) listener(state);
  // Back after a drop: what happened meanwhile was never delivered, so views reload once.
  if (state === "connected" && previous !== "connected" && everConnected) {
    for (const listener of reconnectListeners) listener();
  }
  if (state === "connected") everConnected = true;
}

/** Calls `listener` each time the live connection comes back after dropping. */
export function onReconnect(listener: () => void): () => void {
  reconnectListeners.add(listener);
  return () => reconnectListeners.delete(listener);
}

export function getConnectionState(): ConnectionState {
  return connectionState;
}

export function onConnectionState(listener: StateListener): () => void {
  stateListeners.add(listener);
  return () => stateListeners.delete(listener);
}

function websocketUrl(): string {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}/graphql`;
}

export function createWebSocket(): WsClient {
  return createWsClient({
    url: websocketUrl(),
    lazy: true,
    retryAttempts: Infinity,
    // Backoff with jitter: 1 s, 2 s, 4 s ... up to 30 s.
    retryWait: async (retries) => {
      const delay = Math.min(1000 * 2 ** retries, 30_000) * (0.75 + Math.random() / 2);
      await new Promise((resolve) => setTimeout(resolve, delay));
    },
    shouldRetry: () => true,
    connectionParams: () => {
      const token = getAccessToken();
      return token ? { Authorization: `Bearer ${token}` } : {};
    },
    on: {
      connected: () => setConnectionState("connected"),
      closed: () => setConnectionState("reconnecting"),
      connecting: () => {
        if (connectionState !== "connecting") setConnectionState("reconnecting");
      },
    },
  });
}

export function createGraphQLClient(ws: WsClient): Client {
  return new Client({
    url: "/graphql",
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query ?? "" };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
    fetchOptions: (): RequestInit => {
      const token = getAccessToken();
      const headers: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
      return { headers };
    },
    preferGetMethod: false,
  });
}
