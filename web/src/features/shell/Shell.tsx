import { useEffect, type ReactNode } from "react";
import { Outlet, useLocation, useNavigate, useParams } from "react-router";
import { Button } from "@/components/Button";
import { Notice } from "@/components/Notice";
import { mailboxPath } from "@/lib/routes";
import { getUser, signOut } from "@/lib/session";
import { AllMailLink, MailboxNav } from "./MailboxNav";
import { ShortcutHelp } from "./ShortcutHelp";
import styles from "./Shell.module.css";
import { useConnectionState } from "./useConnectionState";
import { useMailboxes } from "./useMailboxes";
import { useTheme, type Theme } from "./useTheme";

/** The frame around every signed-in page: mailboxes on the left, the page on the right.
 * `tools` (from other features, composed by the app) sit at the foot of the sidebar. */
export function Shell({ tools }: { tools?: ReactNode }) {
  const { mailboxes, error } = useMailboxes();
  const connection = useConnectionState();
  const [theme, setTheme] = useTheme();
  const navigate = useNavigate();
  const { uid } = useParams();
  const first = mailboxes?.[0]?.address;
  const home = useLocation().pathname === "/";

  // The home page opens the first mailbox.
  useEffect(() => {
    if (home && first) void navigate(mailboxPath(first), { replace: true });
  }, [home, first, navigate]);

  const unread = mailboxes?.reduce((sum, item) => sum + item.unreadCount, 0) ?? 0;
  useEffect(() => {
    document.title = unread > 0 ? `(${unread}) MailCue` : "MailCue";
  }, [unread]);

  return (
    <div className={uid ? `${styles.shell} ${styles.reading}` : styles.shell}>
      <nav className={styles.sidebar} aria-label="Mailboxes">
        <div className={styles.brand}>MailCue</div>
        {error && <Notice title="Mailboxes could not be loaded" role="alert" />}
        {mailboxes && mailboxes.length > 0 && <AllMailLink />}
        {mailboxes && <MailboxNav mailboxes={mailboxes} />}
        <div className={styles.footer}>
          {connection === "reconnecting" && (
            <p className={styles.reconnecting} role="status">
              Reconnecting…
            </p>
          )}
          {tools}
          <label className={styles.theme}>
            Theme
            <select value={theme} onChange={(event) => setTheme(event.target.value as Theme)}>
              <option value="system">System</option>
              <option value="light">Light</option>
              <option value="dark">Dark</option>
            </select>
          </label>
          <p className={styles.muted}>Signed in as {getUser()?.username}</p>
          <Button onClick={() => void signOut().then(() => window.location.replace("/signin"))}>
            Sign out
          </Button>
        </div>
      </nav>
      <main className={styles.main}>
        {!home || mailboxes?.length ? (
          <Outlet />
        ) : (
          <Notice title="No mail yet">
            <p>Send a message to this server&apos;s SMTP port (1025 by default), for example:</p>
            <pre>swaks --server 127.0.0.1:1025 --to alice@example.com</pre>
          </Notice>
        )}
      </main>
      <ShortcutHelp />
    </div>
  );
}
