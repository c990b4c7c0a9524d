// The mail event subscription, shared by every feature that reacts to changes.
// Each caller applies events to what it shows (a cache update, not a refetch).
import { useEffect, useRef } from "react";
import { useClient } from "urql";
import { onReconnect } from "./client";
import { graphql, type ResultOf } from "./graphql";

export const MailEventsSubscription = graphql(`
  subscription MailEvents($mailbox: String) {
    events(mailbox: $mailbox) {
      id
      type
      mailbox
      folder
      uid
      at
      data
    }
  }
`);

export type MailEvent = ResultOf<typeof MailEventsSubscription>["events"];

/** Calls `onEvent` for each event of `mailbox` (all reachable mailboxes when null). */
export function useMailEvents(mailbox: string | null, onEvent: (event: MailEvent) => void): void {
  const client = useClient();
  const handler = useRef(onEvent);
  useEffect(() => {
    handler.current = onEvent;
  });
  useEffect(() => {
    const { unsubscribe } = client
      .subscription(MailEventsSubscription, { mailbox })
      .subscribe((result) => {
        if (result.data) handler.current(result.data.events);
      });
    return unsubscribe;
  }, [client, mailbox]);
}

/** Calls `onResync` once each time the live connection is back after a drop (events
 * were missed: reload what is shown). */
export function useResync(onResync: () => void): void {
  const handler = useRef(onResync);
  useEffect(() => {
    handler.current = onResync;
  });
  useEffect(() => onReconnect(() => handler.current()), []);
}
