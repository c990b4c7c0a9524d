import { useCallback, useRef, useState } from "react";
import { useQuery } from "urql";
import { graphql, type ResultOf } from "@/lib/graphql";
import { useMailEvents, useResync, type MailEvent } from "@/lib/live-events";

export const MailboxesQuery = graphql(`
  query ShellMailboxes {
    mailboxes {
      mailboxes {
        id
        address
        displayName
        unreadCount
        emailCount
        folders {
          name
          specialUse
          messageCount
          unseenCount
        }
      }
    }
  }
`);

export type FolderItem = MailboxItem["folders"][number];
export type MailboxItem = ResultOf<typeof MailboxesQuery>["mailboxes"]["mailboxes"][number];

const REFETCH_DELAY_MS = 300;

/** Every reachable mailbox with live counts: a received message bumps its mailbox's
 * counts in place; other changes (flags, deletes, new mailboxes) refetch once, debounced. */
export function useMailboxes() {
  const [result, reexecute] = useQuery({ query: MailboxesQuery, requestPolicy: "network-only" });
  const base = result.data?.mailboxes.mailboxes ?? null;
  // Live changes on top of the last answer; a new answer replaces them.
  const [bumped, setBumped] = useState<{ base: MailboxItem[] | null; items: MailboxItem[] }>();
  const items = bumped && bumped.base === base ? bumped.items : base;
  const timer = useRef<number | undefined>(undefined);

  const refetchSoon = useCallback(() => {
    window.clearTimeout(timer.current);
    timer.current = window.setTimeout(
      () => reexecute({ requestPolicy: "network-only" }),
      REFETCH_DELAY_MS,
    );
  }, [reexecute]);

  useMailEvents(null, (event: MailEvent) => {
    if (event.type === "email.received") {
      const known = (items ?? []).some((item) => item.address === event.mailbox);
      if (!known) {
        refetchSoon();
        return;
      }
      setBumped((previous) => {
        const current = previous && previous.base === base ? previous.items : (base ?? []);
        return {
          base,
          items: current.map((item) =>
            item.address === event.mailbox
              ? {
                  ...item,
                  unreadCount: item.unreadCount + 1,
                  emailCount: item.emailCount + 1,
                  folders: item.folders.map((folder) =>
                    folder.name === event.folder
                      ? { ...folder, unseenCount: folder.unseenCount + 1, messageCount: folder.messageCount + 1 }
                      : folder,
                  ),
                }
              : item,
          ),
        };
      });
      return;
    }
    refetchSoon();
  });

  useResync(() => reexecute({ requestPolicy: "network-only" }));

  return { mailboxes: items, error: result.error, fetching: result.fetching && !items };
}
