import { useCallback, useEffect, useRef, useState } from "react";
import { useClient } from "urql";
import { graphql, readFragment, type ResultOf } from "@/lib/graphql";
import { useResync } from "@/lib/live-events";

export const MailRowFields = graphql(`
  fragment MailRowFields on EmailRow @_unmask {
    id
    uid
    mailbox
    folder
    fromAddress
    fromName
    subject
    preview
    date
    isRead
    hasAttachments
    flags
  }
`);

export const FolderPageQuery = graphql(
  `
    query MailListFolderPage(
      $mailbox: String!
      $folder: String!
      $first: Int!
      $after: String
      $search: String
    ) {
      emailConnection(mailbox: $mailbox, folder: $folder, first: $first, after: $after, search: $search) {
        totalCount
        pageInfo {
          hasNextPage
          endCursor
        }
        edges {
          node {
            ...MailRowFields
          }
        }
      }
    }
  `,
  [MailRowFields],
);

export const AllMailPageQuery = graphql(
  `
    query MailListAllMailPage($first: Int!, $after: String) {
      allMail(first: $first, after: $after) {
        totalCount
        pageInfo {
          hasNextPage
          endCursor
        }
        edges {
          node {
            ...MailRowFields
          }
        }
      }
    }
  `,
  [MailRowFields],
);

const MailChangesSubscription = graphql(
  `
    subscription MailListChanges($mailbox: String) {
      mailChanges(mailbox: $mailbox) {
        id
        kind
        mailbox
        folder
        uid
        isRead
        flags
        fromFolder
        fromUid
        row {
          ...MailRowFields
        }
      }
    }
  `,
  [MailRowFields],
);

export type MailRow = ResultOf<typeof MailRowFields>;
type Change = ResultOf<typeof MailChangesSubscription>["mailChanges"];

/** What a list shows: one folder of one mailbox (with an optional search), or with a null
 * mailbox and folder "All mail": every reachable mailbox's folders but Trash and Junk. */
export type ListScope =
  | { mailbox: string; folder: string; search: string | null }
  | { mailbox: null; folder: null; search: null };

/** Names one message in any list: mailbox, folder and uid. */
export function rowKey(row: Pick<MailRow, "mailbox" | "folder" | "uid">): string {
  return `${row.mailbox}/${row.folder}/${row.uid}`;
}

// All mail leaves these out, as the server's allMail does.
const OUTSIDE_ALL_MAIL = new Set(["Trash", "Junk"]);

interface Page {
  rows: MailRow[];
  total: number;
  hasMore: boolean;
  cursor: string | null;
}

const PAGE_SIZE = 100;

/** Whether a row that arrived belongs in this list. */
function belongs(scope: ListScope, row: MailRow): boolean {
  if (scope.mailbox === null) return !OUTSIDE_ALL_MAIL.has(row.folder);
  return row.mailbox === scope.mailbox && row.folder === scope.folder;
}

function sameMessage(row: MailRow, mailbox: string, folder: string | null | undefined, uid: number | null | undefined) {
  return row.mailbox === mailbox && row.folder === folder && row.uid === String(uid);
}

/**
 * A folder's messages, newest first, a cursor page at a time, kept live from `mailChanges`:
 * a received, copied or moved-in message goes on top from the row the change carries, a
 * deleted or moved-out one is taken out, a flag change applied. `onInsert` tells the caller
 * how many rows went in above what it shows.
 */
export function useMailList(scope: ListScope, onInsert: (count: number) => void) {
  const client = useClient();
  const [state, setState] = useState<Page | null>(null);
  const [error, setError] = useState<string | null>(null);
  const loading = useRef(false);
  const { mailbox, folder, search } = scope;

  const fetchPage = useCallback(
    async (after: string | null) => {
      const options = { requestPolicy: "network-only" } as const;
      const result =
        mailbox === null || folder === null
          ? await client.query(AllMailPageQuery, { first: PAGE_SIZE, after }, options).toPromise()
          : await client.query(FolderPageQuery, { mailbox, folder, first: PAGE_SIZE, after, search }, options).toPromise();
      if (result.error || !result.data) return { error: result.error?.message ?? "The list could not be loaded." };
      const connection = "allMail" in result.data ? result.data.allMail : result.data.emailConnection;
      return {
        page: {
          rows: connection.edges.map((edge) => readFragment(MailRowFields, edge.node)),
          total: connection.totalCount,
          hasMore: connection.pageInfo.hasNextPage,
          cursor: connection.pageInfo.endCursor ?? null,
        },
      };
    },
    [client, mailbox, folder, search],
  );

  const apply = useCallback((first: boolean, answer: Awaited<ReturnType<typeof fetchPage>>) => {
    loading.current = false;
    if (!answer.page) {
      setError(answer.error ?? "The list could not be loaded.");
      return;
    }
    const page = answer.page;
    setState((current) => {
      if (first || !current) return page;
      // Cursor pages never repeat a row; a live insert may have brought one in already.
      const known = new Set(current.rows.map(rowKey));
      return { ...page, rows: [...current.rows, ...page.rows.filter((row) => !known.has(rowKey(row)))] };
    });
  }, []);

  // The caller keys this hook's component by its scope: another folder starts afresh.
  useEffect(() => {
    let live = true;
    loading.current = true;
    void fetchPage(null).then((answer) => {
      if (live) apply(true, answer);
    });
    return () => {
      live = false;
    };
  }, [fetchPage, apply]);

  const loadMore = useCallback(() => {
    if (!state?.hasMore || loading.current) return;
    loading.current = true;
    void fetchPage(state.cursor).then((answer) => apply(false, answer));
  }, [fetchPage, apply, state]);

  const onChange = useCallback(
    (change: Change) => {
      const arrived = change.kind === "RECEIVED" || change.kind === "COPIED" || change.kind === "MOVED";
      const row = change.row ? readFragment(MailRowFields, change.row) : null;
      setState((current) => {
        if (!current) return current;
        let rows = current.rows;
        let total = current.total;
        const drop = (folderName: string | null | undefined, uid: number | null | undefined) => {
          const kept = rows.filter((item) => !sameMessage(item, change.mailbox, folderName, uid));
          if (kept.length !== rows.length) total = Math.max(total - 1, 0);
          rows = kept;
        };
        if (change.kind === "MOVED") drop(change.fromFolder, change.fromUid);
        if (change.kind === "DELETED") drop(change.folder, change.uid);
        if (change.kind === "FLAGS_CHANGED") {
          rows = rows.map((item) =>
            sameMessage(item, change.mailbox, change.folder, change.uid)
              ? { ...item, isRead: change.isRead ?? item.isRead, flags: change.flags ?? item.flags }
              : item,
          );
        }
        // A search cannot tell whether new mail matches: it shows it after a new search.
        if (arrived && row && !search && belongs(scope, row) && !rows.some((item) => rowKey(item) === rowKey(row))) {
          rows = [row, ...rows];
          total += 1;
          onInsert(1);
        }
        return rows === current.rows ? current : { ...current, rows, total };
      });
    },
    [scope, search, onInsert],
  );

  const handler = useRef(onChange);
  useEffect(() => {
    handler.current = onChange;
  });
  useEffect(() => {
    const { unsubscribe } = client
      .subscription(MailChangesSubscription, { mailbox })
      .subscribe((result) => {
        if (result.data) handler.current(result.data.mailChanges);
      });
    return unsubscribe;
  }, [client, mailbox]);

  // Back from a drop: the first page again (what was loaded beyond it is dropped).
  useResync(() => {
    void fetchPage(null).then((answer) => apply(true, answer));
  });

  return { state, error, loadMore };
}
