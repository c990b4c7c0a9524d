import { useEffect, useRef } from "react";
import { Button } from "@/components/Button";
import { getUser } from "@/lib/session";
import styles from "./Connect.module.css";
import { CopyButton } from "./CopyButton";
import { currentServer, DEFAULT_ENDPOINTS } from "./endpoints";
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
            <caption>
              Mail ports: the <strong>default</strong> ports. A server started with other{" "}
              <code>MAILCUE_*_PORT</code> settings listens elsewhere; the API does not report them.
            </caption>
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col">Port</th>
                <th scope="col">Security</th>
              </tr>
            </thead>
            <tbody>
              {DEFAULT_ENDPOINTS.map((endpoint) => (
                <tr key={endpoint.port}>
                  <th scope="row">{endpoint.service}</th>
                  <td>{endpoint.port}</td>
                  <td>{endpoint.security}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <p className={styles.note}>
            IMAP and POP3 log in with a mailbox address and its password. TLS uses the server&apos;s local CA
            unless a certificate was installed: trust <code>&lt;data dir&gt;/tls/ca.pem</code>.
          </p>
          {snippets(server, getUser()?.username ?? "admin").map((snippet) => (
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
