import { useEffect, useState } from "react";
import { getUser, onSessionChange, refresh, type SessionUser } from "@/lib/session";

export type SessionState =
  | { status: "checking" }
  | { status: "signedOut" }
  | { status: "signedIn"; user: SessionUser };

let firstCheck: Promise<boolean> | null = null;

/** The signed-in user; on first use, a page load, asks the refresh cookie for a session. */
export function useSession(): SessionState {
  const [user, setUser] = useState<SessionUser | null>(getUser);
  const [checked, setChecked] = useState(() => getUser() !== null);
  useEffect(() => {
    const stop = onSessionChange((next) => {
      setUser(next);
      setChecked(true);
    });
    if (!checked) {
      firstCheck ??= refresh();
      void firstCheck.then(() => setChecked(true));
    }
    return stop;
  }, [checked]);
  if (user) return { status: "signedIn", user };
  return checked ? { status: "signedOut" } : { status: "checking" };
}
