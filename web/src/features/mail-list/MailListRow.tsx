import { Link } from "react-router";
import { shortDate } from "@/lib/format";
import { messagePath } from "@/lib/routes";
import styles from "./MailList.module.css";
import type { MailRow } from "./useMailList";

interface Props {
  row: MailRow;
  mailbox: string;
  folder: string;
  selected: boolean;
  query: string;
}

export function MailListRow({ row, mailbox, folder, selected, query }: Props) {
  const classes = [styles.row, row.isRead ? "" : styles.unread, selected ? styles.selected : ""];
  return (
    <Link
      to={messagePath(mailbox, folder, row.uid) + query}
      className={classes.filter(Boolean).join(" ")}
      aria-current={selected ? "true" : undefined}
    >
      <span className={styles.from}>{row.fromName || row.fromAddress || "(no sender)"}</span>
      <span className={styles.date}>
        {row.hasAttachments && <span aria-label="has attachments">📎 </span>}
        <time dateTime={row.date ?? undefined}>{shortDate(row.date)}</time>
      </span>
      <span className={styles.subject}>
        {!row.isRead && <span className="visually-hidden">Unread: </span>}
        {row.subject || "(no subject)"}
      </span>
      <span className={styles.preview}>{row.preview}</span>
    </Link>
  );
}
