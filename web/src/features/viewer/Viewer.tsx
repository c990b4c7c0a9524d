import { useEffect, useState } from "react";
import { useMutation, useQuery } from "urql";
import { Notice } from "@/components/Notice";
import { Actions } from "./Actions";
import { longDate } from "@/lib/format";
import { graphql } from "@/lib/graphql";
import { HeadersTab } from "./HeadersTab";
import { HtmlBody } from "./HtmlBody";
import { PartsTab } from "./PartsTab";
import { RawTab } from "./RawTab";
import { Tabs, type TabName } from "./Tabs";
import styles from "./Viewer.module.css";

const EmailQuery = graphql(`
  query ViewerEmail($uid: String!, $mailbox: String!, $folder: String!) {
    email(uid: $uid, mailbox: $mailbox, folder: $folder) {
      uid
      subject
      fromAddress
      fromName
      toAddresses
      ccAddresses
      date
      isRead
      htmlBody
      textBody
      rawHeaders
      attachments {
        partId
        filename
        contentType
        size
        disposition
        contentId
      }
    }
  }
`);

const MarkReadMutation = graphql(`
  mutation ViewerMarkRead($mailbox: String!, $uid: String!, $folder: String!) {
    setEmailFlags(mailbox: $mailbox, uid: $uid, folder: $folder, input: { seen: true }) {
      __typename
    }
  }
`);

interface Props {
  mailbox: string;
  folder: string;
  uid: string;
  /** Where "back" and deleting lead (the list it was opened from). */
  listPath?: string;
}

/** One message: who, when, and its body in tabs. Opening it marks it read. */
export function Viewer({ mailbox, folder, uid, listPath }: Props) {
  const [result] = useQuery({ query: EmailQuery, variables: { uid, mailbox, folder } });
  const [, markRead] = useMutation(MarkReadMutation);
  const [tab, setTab] = useState<TabName | null>(null);
  const email = result.data?.email;

  useEffect(() => {
    if (email && !email.isRead) void markRead({ mailbox, uid: email.uid, folder });
  }, [email, mailbox, folder, markRead]);

  if (result.error) return <Notice title="This message could not be loaded" role="alert" />;
  if (!email) return <Notice title="Loading…" role="status" />;

  const shown: TabName = tab ?? (email.htmlBody ? "html" : "text");
  return (
    <article className={styles.viewer} aria-label="Message">
      <header className={styles.header}>
        <h2 className={styles.subject}>{email.subject || "(no subject)"}</h2>
        <p className={styles.meta}>
          From {email.fromName ? `${email.fromName} <${email.fromAddress}>` : email.fromAddress}
        </p>
        <p className={styles.meta}>To {email.toAddresses.join(", ")}</p>
        {email.ccAddresses.length > 0 && <p className={styles.meta}>Cc {email.ccAddresses.join(", ")}</p>}
        <p className={styles.meta}>{longDate(email.date)}</p>
        <Actions mailbox={mailbox} folder={folder} uid={email.uid} listPath={listPath} />
      </header>
      <Tabs current={shown} onChange={setTab} hasHtml={Boolean(email.htmlBody)} />
      <div className={styles.body} role="tabpanel" id="viewer-panel" aria-labelledby={`tab-${shown}`}>
        {shown === "html" && email.htmlBody && (
          <HtmlBody
            html={email.htmlBody}
            subject={email.subject}
            parts={email.attachments}
            uid={email.uid}
            mailbox={mailbox}
            folder={folder}
          />
        )}
        {shown === "text" && (
          <pre className={styles.pre} tabIndex={0}>
            {email.textBody ?? "This message has no text part."}
          </pre>
        )}
        {shown === "headers" && <HeadersTab headers={email.rawHeaders} />}
        {shown === "raw" && <RawTab uid={uid} mailbox={mailbox} folder={folder} />}
        {shown === "parts" && <PartsTab uid={uid} mailbox={mailbox} folder={folder} parts={email.attachments} />}
      </div>
    </article>
  );
}
