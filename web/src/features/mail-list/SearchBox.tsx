import { useRef, useState, type FormEvent } from "react";
import { useSearchParams } from "react-router";
import { useShortcut } from "@/lib/shortcuts";
import styles from "./MailList.module.css";

const SYNTAX =
  'Words, "phrases", from: to: subject: has:attachment is:read is:unread before:YYYY-MM-DD after:YYYY-MM-DD, and - to negate.';

/** The folder's search; the query lives in the URL (?q=), so it survives reloads and links. */
export function SearchBox() {
  const [params, setParams] = useSearchParams();
  const current = params.get("q") ?? "";
  const [draft, setDraft] = useState(current);
  const input = useRef<HTMLInputElement>(null);
  useShortcut(["/"], () => input.current?.focus());

  function submit(event: FormEvent) {
    event.preventDefault();
    const next = new URLSearchParams(params);
    if (draft.trim()) next.set("q", draft.trim());
    else next.delete("q");
    setParams(next);
  }

  return (
    <form role="search" className={styles.search} onSubmit={submit}>
      <input
        ref={input}
        type="search"
        aria-label="Search this folder"
        aria-describedby="search-syntax"
        placeholder="Search (press /)"
        value={draft}
        onChange={(event) => setDraft(event.target.value)}
      />
      <p id="search-syntax" className="visually-hidden">
        {SYNTAX}
      </p>
      <span className={styles.syntax} title={SYNTAX} aria-hidden="true">
        ?
      </span>
    </form>
  );
}
