import { useQuery } from "urql";
import { Button } from "@/components/Button";
import { Notice } from "@/components/Notice";
import { graphql } from "@/lib/graphql";
import { base64Bytes, saveBytes } from "./download";
import styles from "./Viewer.module.css";

const RawQuery = graphql(`
  query ViewerRaw($uid: String!, $mailbox: String!, $folder: String!) {
    emailRaw(uid: $uid, mailbox: $mailbox, folder: $folder) {
      filename
      contentType
      contentBase64
    }
  }
`);

export function RawTab({ uid, mailbox, folder }: { uid: string; mailbox: string; folder: string }) {
  const [result] = useQuery({ query: RawQuery, variables: { uid, mailbox, folder } });
  const raw = result.data?.emailRaw;
  if (result.error) return <Notice title="The source could not be loaded" role="alert" />;
  if (!raw) return <Notice title="Loading…" role="status" />;
  const bytes = base64Bytes(raw.contentBase64);
  return (
    <div className={styles.tabBody}>
      <Button onClick={() => saveBytes(bytes, raw.filename, "message/rfc822")}>Download .eml</Button>
      <pre className={styles.pre} tabIndex={0} aria-label="Message source">
        {new TextDecoder("utf-8", { fatal: false }).decode(bytes)}
      </pre>
    </div>
  );
}
