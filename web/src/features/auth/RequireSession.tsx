import type { ReactNode } from "react";
import { Navigate, useLocation } from "react-router";
import { Notice } from "@/components/Notice";
import { useSession } from "./useSession";

/** Renders its children for a signed-in user; sends anyone else to the sign-in page. */
export function RequireSession({ children }: { children: ReactNode }) {
  const session = useSession();
  const location = useLocation();
  if (session.status === "checking") return <Notice title="Loading…" role="status" />;
  if (session.status === "signedOut") {
    const next = location.pathname + location.search;
    return <Navigate to={`/signin?next=${encodeURIComponent(next)}`} replace />;
  }
  return children;
}
