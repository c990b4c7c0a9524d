import { useParams, useSearchParams } from "react-router";
import { MailList } from "@/features/mail-list";
import { Viewer } from "@/features/viewer";
import styles from "./MailPage.module.css";

/** /mail/:mailbox/:folder[/:uid]: the folder's list, and the open message beside it. */
export function MailPage() {
  const { mailbox = "", folder = "INBOX", uid } = useParams();
  const [params] = useSearchParams();
  const search = params.get("q");
  return (
    <div className={uid ? `${styles.page} ${styles.open}` : styles.page}>
      <div className={styles.list}>
        <MailList
          key={`${mailbox}/${folder}/${search ?? ""}`}
          mailbox={mailbox}
          folder={folder}
          selectedUid={uid}
          search={search}
        />
      </div>
      <div className={styles.viewer}>
        {uid ? (
          <Viewer key={`${mailbox}/${folder}/${uid}`} mailbox={mailbox} folder={folder} uid={uid} />
        ) : (
          <p className={styles.hint}>Select a message to read it.</p>
        )}
      </div>
    </div>
  );
}
