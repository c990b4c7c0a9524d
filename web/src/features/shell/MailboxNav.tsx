import { NavLink } from "react-router";
import { mailboxPath } from "@/lib/routes";
import styles from "./Shell.module.css";
import type { MailboxItem } from "./useMailboxes";

export function MailboxNav({ mailboxes }: { mailboxes: MailboxItem[] }) {
  if (mailboxes.length === 0) {
    return <p className={styles.muted}>No mailboxes yet: send a message to any address.</p>;
  }
  return (
    <ul className={styles.mailboxes}>
      {mailboxes.map((mailbox) => (
        <li key={mailbox.id}>
          <NavLink
            to={mailboxPath(mailbox.address)}
            className={({ isActive }) => (isActive ? `${styles.mailbox} ${styles.active}` : styles.mailbox)}
            title={mailbox.address}
          >
            <span className={styles.address}>{mailbox.address}</span>
            {mailbox.unreadCount > 0 && (
              <span className={styles.unread} aria-label={`${mailbox.unreadCount} unread`}>
                {mailbox.unreadCount}
              </span>
            )}
          </NavLink>
        </li>
      ))}
    </ul>
  );
}
