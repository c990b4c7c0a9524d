import { useClient } from "urql";
import { Button } from "@/components/Button";
import { byteSize } from "@/lib/format";
import { graphql } from "@/lib/graphql";
import { base64Bytes, saveBytes } from "./download";
import styles from "./Viewer.module.css";

const PartQuery = graphql(`
  query ViewerPart($uid: String!, $partId: String!, $mailbox: String!, $folder: String!) {
    emailAttachment(uid: $uid, partId: $partId, mailbox: $mailbox, folder: $folder) {
      filename
      contentType
      contentBase64
    }
  }
`);

export interface Part {
  partId: string;
  filename: string;
  contentType: string;
  size: number;
  disposition: string;
}

interface Props {
  uid: string;
  mailbox: string;
  folder: string;
  parts: readonly Part[];
}

export function PartsTab({ uid, mailbox, folder, parts }: Props) {
  const client = useClient();
  async function download(part: Part) {
    const result = await client.query(PartQuery, { uid, partId: part.partId, mailbox, folder }).toPromise();
    const file = result.data?.emailAttachment;
    if (file) saveBytes(base64Bytes(file.contentBase64), file.filename || part.filename, file.contentType);
  }
  if (parts.length === 0) return <p className={styles.tabBody}>No attachments or inline parts.</p>;
  return (
    <div className={styles.tabBody}>
      <table className={styles.table}>
        <thead>
          <tr>
            <th scope="col">Part</th>
            <th scope="col">Name</th>
            <th scope="col">Type</th>
            <th scope="col">Size</th>
            <th scope="col">
              <span className="visually-hidden">Download</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {parts.map((part) => (
            <tr key={part.partId}>
              <td>{part.partId}</td>
              <td>{part.filename || "(unnamed)"}</td>
              <td>
                {part.contentType} ({part.disposition})
              </td>
              <td>{byteSize(part.size)}</td>
              <td>
                <Button onClick={() => void download(part)}>Download</Button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
