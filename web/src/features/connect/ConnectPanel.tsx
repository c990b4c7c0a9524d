import { useEffect, useRef } from "react";
import { useQuery } from "urql";
import { Button } from "@/components/Button";
import { getUser } from "@/lib/session";
import styles from "./Connect.module.css";
import { CopyButton } from "./CopyButton";
import { currentServer, ListenersQuery, ordered, portOf, security, serviceName } from "./endpoints";
import { snippets } from "./snippets";

interface Props {
  open: boolean;
  onClose: () => void;
}

/** How to reach this server: hosts, ports and TLS of its listeners, and snippets to copy. */
export function ConnectPanel({ open, onClose }: Props) {
  const dialog = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    if (open && !element.open) element.showModal();
    if (!open && element.open) element.close();
  }, [open]);
  const server = currentServer();
  const [result] = useQuery({ query: ListenersQuery, pause: !open });
  const listeners = ordered(result.data?.mailListeners ?? []);
  const smtpPort = portOf(listeners, "smtp");
  return (
    <dialog ref={dialog} className={styles.panel} aria-labelledby="connect-title" onClose={onClose}>
      <header className={styles.top}>
        <h2 id="connect-title">Connect to this server</h2>
        <Button onClick={onClose}>Close</Button>
      </header>
      {open && (
        <>
          <dl className={styles.facts}>
            <dt>Host</dt>
            <dd>
              <code>{server.host}</code> <span className={styles.note}>(the address this page was opened at)</span>
            </dd>
            <dt>HTTP API</dt>
            <dd>
              <code>{server.apiOrigin}</code> <span className={styles.note}>(REST under /api/v1, GraphQL at /graphql)</span>
            </dd>
          </dl>
          <table className={styles.ports}>
            <caption>Mail listeners of this server</caption>
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col">Port</th>
                <th scope="col">Security</th>
              </tr>
            </thead>
            <tbody>
              {listeners.map((listener) => (
                <tr key={listener.name}>
                  <th scope="row">{serviceName(listener)}</th>
                  <td>{listener.port}</td>
                  <td>{security(listener)}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {result.error && <p role="alert">Could not read the listeners: {result.error.message}</p>}
          <p className={styles.note}>
            IMAP and POP3 log in with a mailbox address and its password. TLS uses the server&apos;s local CA
            unless a certificate was installed: trust <code>&lt;data dir&gt;/tls/ca.pem</code>.
          </p>
          {smtpPort !== undefined &&
            snippets(server, smtpPort, getUser()?.username ?? "admin").map((snippet) => (
            <section key={snippet.id} className={styles.snippet} aria-labelledby={`snippet-${snippet.id}`}>
              <div className={styles.snippetTop}>
                <h3 id={`snippet-${snippet.id}`}>{snippet.title}</h3>
                <CopyButton text={snippet.code} label={`${snippet.title} snippet`} />
              </div>
              <pre tabIndex={0} aria-label={`${snippet.title} snippet`}>
                <code>{snippet.code}</code>
              </pre>
            </section>
          ))}
        </>
      )}
    </dialog>
  );
}
