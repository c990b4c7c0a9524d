import { useMemo, useState } from "react";
import { Button } from "@/components/Button";
import { hasRemoteContent, mailFrameDocument } from "./mailFrame";
import styles from "./Viewer.module.css";

/** The message's HTML in a sandboxed frame; remote content only after the user asks. */
export function HtmlBody({ html, subject }: { html: string; subject: string }) {
  const [allowRemote, setAllowRemote] = useState(false);
  const remote = useMemo(() => hasRemoteContent(html), [html]);
  const document = useMemo(() => mailFrameDocument(html, allowRemote), [html, allowRemote]);
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
