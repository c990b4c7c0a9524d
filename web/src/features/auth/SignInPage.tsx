import { useState, type FormEvent } from "react";
import { Navigate, useNavigate, useSearchParams } from "react-router";
import { Button } from "@/components/Button";
import { finishSignIn, signIn, type LoginAnswer } from "@/lib/session";
import styles from "./SignInPage.module.css";
import { useSession } from "./useSession";

function safeNext(next: string | null): string {
  // Only paths of this app: never an absolute or protocol-relative URL.
  return next && next.startsWith("/") && !next.startsWith("//") ? next : "/";
}

export function SignInPage() {
  const session = useSession();
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [tempToken, setTempToken] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const next = safeNext(params.get("next"));

  if (session.status === "signedIn") return <Navigate to={next} replace />;

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    setBusy(true);
    setError(null);
    let answer: LoginAnswer;
    try {
      answer = tempToken
        ? await finishSignIn(tempToken, String(form.get("code") ?? ""))
        : await signIn(String(form.get("username") ?? ""), String(form.get("password") ?? ""));
    } catch {
      answer = { kind: "error", message: "The server cannot be reached." };
    }
    setBusy(false);
    if (answer.kind === "error") setError(answer.message);
    else if (answer.kind === "needsCode") setTempToken(answer.tempToken);
    else void navigate(next, { replace: true });
  }

  return (
    <main className={styles.page}>
      <form className={styles.card} onSubmit={(event) => void submit(event)}>
        <h1 className={styles.title}>MailCue</h1>
        {tempToken ? (
          <label className={styles.field}>
            Code from your authenticator app
            <input
              name="code"
              inputMode="numeric"
              autoComplete="one-time-code"
              pattern="[0-9]{6}"
              required
              autoFocus
            />
          </label>
        ) : (
          <>
            <label className={styles.field}>
              Username
              <input name="username" autoComplete="username" required autoFocus />
            </label>
            <label className={styles.field}>
              Password
              <input name="password" type="password" autoComplete="current-password" required />
            </label>
          </>
        )}
        {error && (
          <p className={styles.error} role="alert">
            {error}
          </p>
        )}
        <Button type="submit" variant="primary" disabled={busy}>
          {tempToken ? "Verify" : "Sign in"}
        </Button>
      </form>
    </main>
  );
}
