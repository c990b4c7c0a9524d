import { NavLink, useParams } from "react-router";
import { ALL_MAIL_PATH, mailboxPath } from "@/lib/routes";
import { FolderIcon } from "./FolderIcon";
import styles from "./Shell.module.css";
import type { FolderItem, MailboxItem } from "./useMailboxes";

function linkClass({ isActive }: { isActive: boolean }): string {
  return isActive ? `${styles.mailbox} ${styles.active ?? ""}` : (styles.mailbox ?? "");
}

/** A folder's count: unread when there is any (bold), otherwise how many it holds. */
function FolderCount({ folder }: { folder: FolderItem }) {
  if (folder.unseenCount > 0) {
    return (
      <span className={styles.unread} aria-label={`${folder.unseenCount} unread`}>
        {folder.unseenCount}
      </span>
    );
  }
  if (folder.messageCount === 0) return null;
  return (
    <span className={styles.total} aria-label={`${folder.messageCount} messages`}>
      {folder.messageCount}
    </span>
  );
}

/** The open mailbox's folders, INBOX first, each with its icon and count. */
function FolderList({ mailbox }: { mailbox: MailboxItem }) {
  return (
    <ul className={styles.folders} aria-label={`Folders of ${mailbox.address}`}>
      {mailbox.folders.map((folder) => (
        <li key={folder.name}>
          <NavLink to={mailboxPath(mailbox.address, folder.name)} className={linkClass} end={false}>
            <span className={styles.folderName}>
              <FolderIcon name={folder.name} specialUse={folder.specialUse} />
              <span className={styles.address}>{folder.name === "INBOX" ? "Inbox" : folder.name}</span>
            </span>
            <FolderCount folder={folder} />
          </NavLink>
        </li>
      ))}
    </ul>
  );
}

/** Every mailbox's mail together, newest first (Trash and Junk left out). */
export function AllMailLink() {
  return (
    <NavLink to={ALL_MAIL_PATH} className={linkClass}>
      <span className={styles.folderName}>
        <FolderIcon name="All mail" specialUse={"\\All"} />
        <span className={styles.address}>All mail</span>
      </span>
    </NavLink>
  );
}

export function MailboxNav({ mailboxes }: { mailboxes: MailboxItem[] }) {
  const { mailbox: open } = useParams();
  if (mailboxes.length === 0) {
    return <p className={styles.muted}>No mailboxes yet: send a message to any address.</p>;
  }
  return (
    <ul className={styles.mailboxes}>
      {mailboxes.map((mailbox) => (
        <li key={mailbox.id}>
          <NavLink
            to={mailboxPath(mailbox.address)}
            className={() => (mailbox.address === open ? `${styles.mailbox} ${styles.current}` : (styles.mailbox ?? ""))}
            title={mailbox.address}
            aria-expanded={mailbox.address === open}
          >
            <span className={styles.address}>{mailbox.address}</span>
            {mailbox.unreadCount > 0 && (
              <span className={styles.unread} aria-label={`${mailbox.unreadCount} unread`}>
                {mailbox.unreadCount}
              </span>
            )}
          </NavLink>
          {mailbox.address === open && <FolderList mailbox={mailbox} />}
        </li>
      ))}
    </ul>
  );
}
