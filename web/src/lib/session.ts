// The access token lives in memory only; the refresh token is the server's HttpOnly,
// SameSite=Strict cookie (path /api/v1/auth). A reload or a second tab gets a fresh
// access token from that cookie. One refresh at a time across tabs (Web Locks): each
// refresh spends the cookie's token, so two tabs racing would spend it twice.

export interface SessionUser {
  id: string;
  username: string;
  email: string;
  is_admin: boolean;
}

interface TokenAnswer {
  access_token: string;
  user: SessionUser;
}

export type LoginAnswer =
  | { kind: "signedIn"; user: SessionUser }
  | { kind: "needsCode"; tempToken: string }
  | { kind: "error"; message: string };

type Listener = (user: SessionUser | null) => void;

const AUTH = "/api/v1/auth";
// Sent with every cookie-based refresh (the server requires it): a cross-site form cannot set a header.
const CSRF_HEADER = { "X-MailCue-Refresh": "1" };
const REFRESH_LOCK = "mailcue-refresh";
const REFRESH_MARGIN_MS = 60_000;

let accessToken: string | null = null;
let currentUser: SessionUser | null = null;
let refreshTimer: number | undefined;
const listeners = new Set<Listener>();

export function getAccessToken(): string | null {
  return accessToken;
}

export function getUser(): SessionUser | null {
  return currentUser;
}

export function onSessionChange(listener: Listener): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

function expiresAt(token: string): number | null {
  const payload = token.split(".")[1];
  if (!payload) return null;
  try {
    const claims = JSON.parse(atob(payload.replace(/-/g, "+").replace(/_/g, "/"))) as {
      exp?: number;
    };
    return typeof claims.exp === "number" ? claims.exp * 1000 : null;
  } catch {
    return null;
  }
}

function setSession(answer: TokenAnswer | null): void {
  window.clearTimeout(refreshTimer);
  accessToken = answer?.access_token ?? null;
  currentUser = answer?.user ?? null;
  if (accessToken) {
    const exp = expiresAt(accessToken);
    if (exp !== null) {
      const delay = Math.max(exp - Date.now() - REFRESH_MARGIN_MS, 5_000);
      refreshTimer = window.setTimeout(() => void refresh(), delay);
    }
  }
  for (const listener of listeners) listener(currentUser);
}

async function detail(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { detail?: unknown };
    if (typeof body.detail === "string") return body.detail;
  } catch {
    // not JSON: fall through
  }
  return `The server answered ${response.status}.`;
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  return fetch(`${AUTH}${path}`, {
    method: "POST",
    credentials: "same-origin",
    headers: body === undefined ? headers : { "Content-Type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
}

export async function signIn(username: string, password: string): Promise<LoginAnswer> {
  const response = await post("/login", { username, password });
  if (!response.ok) return { kind: "error", message: await detail(response) };
  const body = (await response.json()) as TokenAnswer | { temp_token: string };
  if ("temp_token" in body) return { kind: "needsCode", tempToken: body.temp_token };
  setSession(body);
  return { kind: "signedIn", user: body.user };
}

export async function finishSignIn(tempToken: string, code: string): Promise<LoginAnswer> {
  const response = await post("/login/2fa", { temp_token: tempToken, code });
  if (!response.ok) return { kind: "error", message: await detail(response) };
  const body = (await response.json()) as TokenAnswer;
  setSession(body);
  return { kind: "signedIn", user: body.user };
}

async function refreshOnce(): Promise<boolean> {
  const response = await post("/refresh", undefined, CSRF_HEADER);
  if (!response.ok) {
    setSession(null);
    return false;
  }
  setSession((await response.json()) as TokenAnswer);
  return true;
}

/** A new access token from the refresh cookie; false when the session is over. */
export async function refresh(): Promise<boolean> {
  if (navigator.locks) {
    return navigator.locks.request(REFRESH_LOCK, refreshOnce);
  }
  return refreshOnce();
}

/** Ends the session on the server (and its refresh cookie), then here. */
export async function signOut(): Promise<void> {
  const token = accessToken;
  try {
    await post("/logout", undefined, token ? { Authorization: `Bearer ${token}` } : {});
  } finally {
    setSession(null);
  }
}
