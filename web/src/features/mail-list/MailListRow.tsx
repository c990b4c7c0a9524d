import { Link } from "react-router";
import { shortDate } from "@/lib/format";
import styles from "./MailList.module.css";
import type { MailRow } from "./useMailList";

interface Props {
  row: MailRow;
  to: string;
  selected: boolean;
  /** All mail: say which mailbox the message is in. */
  showMailbox: boolean;
}

export function MailListRow({ row, to, selected, showMailbox }: Props) {
  const classes = [styles.row, row.isRead ? "" : styles.unread, selected ? styles.selected : ""];
  return (
    <Link to={to} className={classes.filter(Boolean).join(" ")} aria-current={selected ? "true" : undefined}>
      <span className={styles.from}>{row.fromName || row.fromAddress || "(no sender)"}</span>
      <span className={styles.date}>
        {row.hasAttachments && <span aria-label="has attachments">📎 </span>}
        <time dateTime={row.date ?? undefined}>{shortDate(row.date)}</time>
      </span>
      <span className={styles.subject}>
        {!row.isRead && <span className="visually-hidden">Unread: </span>}
        {row.subject || "(no subject)"}
      </span>
      <span className={styles.preview}>
        {showMailbox && (
          <span className={styles.to}>
            <span className="visually-hidden">To </span>
            {row.mailbox}
            {row.folder !== "INBOX" && ` / ${row.folder}`}
            {" · "}
          </span>
        )}
        {row.preview}
      </span>
    </Link>
  );
}
