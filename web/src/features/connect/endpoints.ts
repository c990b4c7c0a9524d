// What the Connect panel shows about this server: the host and HTTP address this page
// was loaded from, and the mail listeners the API reports (mailListeners).
import { graphql, type ResultOf } from "@/lib/graphql";

export const ListenersQuery = graphql(`
  query ConnectListeners {
    mailListeners {
      name
      port
      tls
    }
  }
`);

export type Listener = ResultOf<typeof ListenersQuery>["mailListeners"][number];

const SERVICES: Record<string, string> = {
  smtp: "SMTP (any recipient in test mode)",
  submission: "SMTP submission",
  smtps: "SMTP over TLS",
  lmtp: "LMTP",
  imap: "IMAP",
  imaps: "IMAP over TLS",
  pop3: "POP3",
  pop3s: "POP3 over TLS",
};
const ORDER = Object.keys(SERVICES);

/** The listeners in a reader's order: SMTP first, then LMTP, IMAP and POP3. */
export function ordered(listeners: readonly Listener[]): Listener[] {
  return [...listeners].sort((a, b) => ORDER.indexOf(a.name) - ORDER.indexOf(b.name));
}

export function serviceName(listener: Listener): string {
  return SERVICES[listener.name] ?? listener.name;
}

export function security(listener: Listener): string {
  if (listener.tls === "IMPLICIT") return "Implicit TLS";
  if (listener.tls === "NONE") return "Plain";
  if (listener.name === "submission") return "STARTTLS, then AUTH";
  if (listener.name.startsWith("pop3")) return "STLS";
  return listener.name === "smtp" ? "Plain; STARTTLS offered" : "STARTTLS";
}

/** The port of the listener called ``name``, if the server runs one. */
export function portOf(listeners: readonly Listener[], name: string): number | undefined {
  return listeners.find((listener) => listener.name === name)?.port;
}

export interface ServerAddress {
  /** The host name or IP clients use, without IPv6 brackets. */
  host: string;
  /** Scheme, host and port of the HTTP API, e.g. http://127.0.0.1:8088. */
  apiOrigin: string;
}

export function currentServer(location: Location = window.location): ServerAddress {
  return { host: location.hostname.replace(/^\[(.*)\]$/, "$1"), apiOrigin: location.origin };
}
