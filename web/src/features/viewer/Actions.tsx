import { useNavigate, useSearchParams } from "react-router";
import { useMutation } from "urql";
import { Button } from "@/components/Button";
import { graphql } from "@/lib/graphql";
import { mailboxPath } from "@/lib/routes";
import { useShortcut } from "@/lib/shortcuts";
import styles from "./Viewer.module.css";

const DeleteMutation = graphql(`
  mutation ViewerDelete($uid: String!, $mailbox: String!, $folder: String!) {
    deleteEmail(uid: $uid, mailbox: $mailbox, folder: $folder) {
      __typename
      ... on OperationError {
        message
      }
    }
  }
`);

const MarkUnreadMutation = graphql(`
  mutation ViewerMarkUnread($mailbox: String!, $uid: String!, $folder: String!) {
    setEmailFlags(mailbox: $mailbox, uid: $uid, folder: $folder, input: { seen: false }) {
      __typename
      ... on OperationError {
        message
      }
    }
  }
`);

interface Props {
  mailbox: string;
  folder: string;
  uid: string;
  listPath?: string | undefined;
}

/** What a user does with the open message; each leaves for the list afterwards. */
export function Actions({ mailbox, folder, uid, listPath }: Props) {
  const navigate = useNavigate();
  const [params] = useSearchParams();
  const [deleted, remove] = useMutation(DeleteMutation);
  const [unread, markUnread] = useMutation(MarkUnreadMutation);
  const back = () =>
    void navigate((listPath ?? mailboxPath(mailbox, folder)) + (params.size ? `?${params}` : ""));
  const failure =
    (deleted.data?.deleteEmail.__typename === "OperationError" && deleted.data.deleteEmail.message) ||
    (unread.data?.setEmailFlags.__typename === "OperationError" && unread.data.setEmailFlags.message) ||
    deleted.error?.message ||
    unread.error?.message;

  async function onDelete() {
    const result = await remove({ uid, mailbox, folder });
    if (result.data?.deleteEmail.__typename === "Done") back();
  }
  async function onMarkUnread() {
    const result = await markUnread({ uid, mailbox, folder });
    if (result.data?.setEmailFlags.__typename === "EmailChange") back();
  }
  useShortcut(["d", "Delete"], () => void onDelete());

  return (
    <div className={styles.actions}>
      <Button className={styles.back} onClick={back}>
        ← Back to the list
      </Button>
      <Button onClick={() => void onDelete()} disabled={deleted.fetching} variant="danger">
        Delete
      </Button>
      <Button onClick={() => void onMarkUnread()} disabled={unread.fetching}>
        Mark unread
      </Button>
      {failure && (
        <span role="alert" className={styles.failure}>
          {failure}
        </span>
      )}
    </div>
  );
}
