import { useCallback, useEffect, useRef, useState } from "react";
import { useClient } from "urql";
import { graphql, type ResultOf } from "@/lib/graphql";
import { useMailEvents, useResync, type MailEvent } from "@/lib/live-events";

export const MailListQuery = graphql(`
  query MailListPage(
    $mailbox: String!
    $folder: String!
    $page: Int!
    $pageSize: Int!
    $search: String
  ) {
    emails(mailbox: $mailbox, folder: $folder, page: $page, pageSize: $pageSize, search: $search) {
      total
      hasMore
      emails {
        uid
        fromAddress
        fromName
        subject
        preview
        date
        isRead
        hasAttachments
        flags
      }
    }
  }
`);

export type MailRow = ResultOf<typeof MailListQuery>["emails"]["emails"][number];

const PAGE_SIZE = 100;

interface ListState {
  rows: MailRow[];
  total: number;
  hasMore: boolean;
}

function fromEvent(event: MailEvent): MailRow | null {
  if (event.uid === null || event.uid === undefined) return null;
  const data = event.data;
  const text = (key: string) => (typeof data[key] === "string" ? (data[key] as string) : "");
  return {
    uid: String(event.uid),
    fromAddress: text("from"),
    fromName: text("from_name"),
    subject: text("subject"),
    preview: "",
    date: event.at,
    isRead: false,
    hasAttachments: false,
    flags: [],
  };
}

/**
 * A folder's messages, newest first, a page at a time, kept live: a received message is
 * put at the top from the event itself, a deleted one taken out, a flag change applied.
 * `onInsert` tells the caller how many rows went in above what it shows.
 */
export function useMailList(
  mailbox: string,
  folder: string,
  search: string | null,
  onInsert: (count: number) => void,
) {
  const client = useClient();
  const [state, setState] = useState<ListState | null>(null);
  const [error, setError] = useState<string | null>(null);
  const loading = useRef(false);

  const fetchPage = useCallback(
    (page: number) =>
      client
        .query(
          MailListQuery,
          { mailbox, folder, page, pageSize: PAGE_SIZE, search },
          { requestPolicy: "network-only" },
        )
        .toPromise(),
    [client, mailbox, folder, search],
  );

  const apply = useCallback((page: number, result: Awaited<ReturnType<typeof fetchPage>>) => {
    loading.current = false;
    if (result.error || !result.data) {
      setError(result.error?.message ?? "The list could not be loaded.");
      return;
    }
    const answer = result.data.emails;
    setState((current) => {
      const known = new Set(page === 1 ? [] : current?.rows.map((row) => row.uid));
      const fresh = answer.emails.filter((row) => !known.has(row.uid));
      return {
        rows: page === 1 ? fresh : [...(current?.rows ?? []), ...fresh],
        total: answer.total,
        hasMore: answer.hasMore,
      };
    });
  }, []);

  // The caller keys this hook's component by mailbox and folder: a new folder starts afresh.
  useEffect(() => {
    let live = true;
    loading.current = true;
    void fetchPage(1).then((result) => {
      if (live) apply(1, result);
    });
    return () => {
      live = false;
    };
  }, [fetchPage, apply]);

  const loadMore = useCallback(() => {
    if (!state?.hasMore || loading.current) return;
    const page = Math.floor(state.rows.length / PAGE_SIZE) + 1;
    loading.current = true;
    void fetchPage(page).then((result) => apply(page, result));
  }, [fetchPage, apply, state]);

  useMailEvents(mailbox, (event) => {
    if (event.folder !== folder || event.uid === null || event.uid === undefined) return;
    const uid = String(event.uid);
    // A search result cannot tell whether new mail matches: it shows it after a new search.
    const arrived = event.type === "email.received" || event.type === "email.copied";
    if (arrived && search) return;
    if (arrived) {
      const row = fromEvent(event);
      if (!row) return;
      setState((current) => {
        if (!current || current.rows.some((item) => item.uid === uid)) return current;
        onInsert(1);
        return { ...current, rows: [row, ...current.rows], total: current.total + 1 };
      });
    } else if (event.type === "email.deleted" || event.type === "email.moved") {
      setState((current) =>
        current && {
          ...current,
          rows: current.rows.filter((item) => item.uid !== uid),
          total: Math.max(current.total - 1, 0),
        },
      );
    } else if (event.type === "email.flags_changed") {
      const seen = event.data.seen;
      if (typeof seen !== "boolean") return;
      setState((current) =>
        current && {
          ...current,
          rows: current.rows.map((item) => (item.uid === uid ? { ...item, isRead: seen } : item)),
        },
      );
    }
  });

  // Back from a drop: the first page again (what was loaded beyond it is dropped).
  useResync(() => {
    void fetchPage(1).then((result) => apply(1, result));
  });

  return { state, error, loadMore };
}
