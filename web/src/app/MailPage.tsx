import { useParams, useSearchParams } from "react-router";
import { MailList } from "@/features/mail-list";
import { Viewer } from "@/features/viewer";
import { ALL_MAIL_PATH } from "@/lib/routes";
import styles from "./MailPage.module.css";

/** /mail/:mailbox/:folder[/:uid]: the folder's list, and the open message beside it;
 * /all[/:mailbox/:folder/:uid]: every mailbox's mail together ("All mail"). */
export function MailPage({ allMail = false }: { allMail?: boolean }) {
  const { mailbox = "", folder = "INBOX", uid } = useParams();
  const [params] = useSearchParams();
  const search = allMail ? null : params.get("q");
  const scope = allMail ? { mailbox: null, folder: null, search: null } : { mailbox, folder, search };
  return (
    <div className={uid ? `${styles.page} ${styles.open}` : styles.page}>
      <div className={styles.list}>
        <MailList
          key={allMail ? "all" : `${mailbox}/${folder}/${search ?? ""}`}
          scope={scope}
          selected={uid ? `${mailbox}/${folder}/${uid}` : undefined}
        />
      </div>
      <div className={styles.viewer}>
        {uid ? (
          <Viewer
            key={`${mailbox}/${folder}/${uid}`}
            mailbox={mailbox}
            folder={folder}
            uid={uid}
            listPath={allMail ? ALL_MAIL_PATH : undefined}
          />
        ) : (
          <p className={styles.hint}>Select a message to read it.</p>
        )}
      </div>
    </div>
  );
}
