import { useMemo, useState } from "react";
import { Button } from "@/components/Button";
import { Notice } from "@/components/Notice";
import { hasRemoteContent, mailFrameDocument } from "./mailFrame";
import { useInlineImages, type InlinePart } from "./useInlineImages";
import styles from "./Viewer.module.css";

/** The message's HTML in a sandboxed frame; remote content only after the user asks. */
interface Props {
  html: string;
  subject: string;
  parts: readonly InlinePart[];
  uid: string;
  mailbox: string;
  folder: string;
}

export function HtmlBody({ html, subject, parts, uid, mailbox, folder }: Props) {
  const [allowRemote, setAllowRemote] = useState(false);
  const remote = useMemo(() => hasRemoteContent(html), [html]);
  const images = useInlineImages({ html, parts, uid, mailbox, folder });
  const document = useMemo(
    () => (images ? mailFrameDocument(html, allowRemote, images) : null),
    [html, allowRemote, images],
  );
  if (document === null) return <Notice title="Loading…" role="status" />;
  return (
    <div className={styles.htmlBody}>
      {remote && !allowRemote && (
        <div className={styles.banner} role="status">
          Remote content is blocked to protect your privacy.
          <Button onClick={() => setAllowRemote(true)}>Load remote content</Button>
        </div>
      )}
      <iframe
        key={allowRemote ? "remote" : "local"}
        className={styles.frame}
        title={`Message: ${subject}`}
        sandbox="allow-popups allow-popups-to-escape-sandbox"
        referrerPolicy="no-referrer"
        srcDoc={document}
      />
    </div>
  );
}
