// What the Connect panel can know about this server. The API reports no listener
// ports yet, so mail ports are the documented defaults (config.py / README), shown as
// such; the host and the HTTP address are where this page itself was loaded from.

export interface Endpoint {
  service: string;
  port: number;
  security: string;
}

/** The defaults of MAILCUE_*_PORT; a server started with other values listens elsewhere. */
export const DEFAULT_ENDPOINTS: Endpoint[] = [
  { service: "SMTP (any recipient in test mode)", port: 1025, security: "Plain; STARTTLS offered" },
  { service: "SMTP submission", port: 1587, security: "STARTTLS, then AUTH" },
  { service: "SMTP over TLS", port: 1465, security: "Implicit TLS" },
  { service: "IMAP", port: 1143, security: "STARTTLS" },
  { service: "IMAP over TLS", port: 1993, security: "Implicit TLS" },
  { service: "POP3", port: 1110, security: "STLS" },
  { service: "POP3 over TLS", port: 1995, security: "Implicit TLS" },
];

export const DEFAULT_SMTP_PORT = 1025;

export interface ServerAddress {
  /** The host name or IP clients use, without IPv6 brackets. */
  host: string;
  /** Scheme, host and port of the HTTP API, e.g. http://127.0.0.1:8088. */
  apiOrigin: string;
}

export function currentServer(location: Location = window.location): ServerAddress {
  return { host: location.hostname.replace(/^\[(.*)\]$/, "$1"), apiOrigin: location.origin };
}
