import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useEffect, useRef } from "react";
import { useNavigate } from "react-router";
import { Notice } from "@/components/Notice";
import { ALL_MAIL_PATH, allMailMessagePath, mailboxPath, messagePath } from "@/lib/routes";
import { useShortcut } from "@/lib/shortcuts";
import styles from "./MailList.module.css";
import { MailListRow } from "./MailListRow";
import { SearchBox } from "./SearchBox";
import { rowKey, useMailList, type ListScope, type MailRow } from "./useMailList";

const ROW_HEIGHT = 64;

interface Props {
  scope: ListScope;
  /** The open message as rowKey names it. */
  selected: string | undefined;
}

/** A folder's messages (or All mail) in a virtualised list: only the rows in view are in the DOM. */
export function MailList({ scope, selected }: Props) {
  const { mailbox, folder, search } = scope;
  const allMail = mailbox === null;
  const scroller = useRef<HTMLDivElement>(null);

  // New mail goes in at the top; a user scrolled down keeps seeing the same rows.
  const onInsert = useCallback((count: number) => {
    const element = scroller.current;
    if (element && element.scrollTop > 0) element.scrollTop += count * ROW_HEIGHT;
  }, []);
  const { state, error, loadMore } = useMailList(scope, onInsert);
  const rows = state?.rows ?? [];

  // TanStack Virtual hands out fresh functions each render; the React Compiler skips this component.
  // eslint-disable-next-line react-hooks/incompatible-library
  const virtualizer = useVirtualizer({
    count: rows.length,
    getScrollElement: () => scroller.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 10,
  });
  const items = virtualizer.getVirtualItems();
  const last = items[items.length - 1];

  useEffect(() => {
    if (last && last.index >= rows.length - 20) loadMore();
  }, [last, rows.length, loadMore]);

  // j / k: the next or previous message; u: back to the list.
  const navigate = useNavigate();
  const query = search ? `?q=${encodeURIComponent(search)}` : "";
  const linkFor = (row: MailRow) =>
    (allMail ? allMailMessagePath(row.mailbox, row.folder, row.uid) : messagePath(row.mailbox, row.folder, row.uid)) +
    query;
  const listPath = mailbox === null ? ALL_MAIL_PATH : mailboxPath(mailbox, folder);
  useShortcut(["j", "k"], (event) => {
    const at = rows.findIndex((row) => rowKey(row) === selected);
    const index = at < 0 ? 0 : Math.min(Math.max(at + (event.key === "j" ? 1 : -1), 0), rows.length - 1);
    const row = rows[index];
    if (!row) return;
    virtualizer.scrollToIndex(index);
    void navigate(linkFor(row));
  });
  useShortcut(["u"], () => void navigate(listPath + query));

  if (error) return <Notice title="The list could not be loaded" role="alert">{error}</Notice>;
  if (!state) return <Notice title="Loading…" role="status" />;

  return (
    <section className={styles.pane} aria-label={allMail ? "All mail" : `${folder} of ${mailbox}`}>
      <header className={styles.header}>
        <h1 className={styles.heading}>{allMail ? "All mail" : mailbox}</h1>
        {folder !== null && folder !== "INBOX" && <span className={styles.folder}>{folder}</span>}
        <span className={styles.count} aria-live="polite">
          {state.total} {state.total === 1 ? "message" : "messages"}
        </span>
      </header>
      {!allMail && <SearchBox key={search ?? ""} />}
      {rows.length === 0 && search ? (
        <Notice title="No message matches this search" />
      ) : rows.length === 0 ? (
        <Notice title={allMail ? "No mail yet" : "This folder is empty"}>
          <p>Mail sent to {mailbox ?? "any address"} over SMTP shows up here as it arrives.</p>
        </Notice>
      ) : (
        <div ref={scroller} className={styles.scroller}>
          <div role="list" aria-label="Messages" className={styles.sizer} style={{ height: virtualizer.getTotalSize() }}>
            {items.map((item) => {
              const row = rows[item.index];
              if (!row) return null;
              return (
                <div
                  role="listitem"
                  key={rowKey(row)}
                  className={styles.item}
                  style={{ height: ROW_HEIGHT, transform: `translateY(${item.start}px)` }}
                >
                  <MailListRow row={row} to={linkFor(row)} selected={rowKey(row) === selected} showMailbox={allMail} />
                </div>
              );
            })}
          </div>
        </div>
      )}
    </section>
  );
}
