import { useState } from "react";
import { Button } from "@/components/Button";
import styles from "./Connect.module.css";

type Outcome = "idle" | "copied" | "failed";

/** Puts `text` on the clipboard and says so next to the button (politely, for screen readers). */
export function CopyButton({ text, label }: { text: string; label: string }) {
  const [outcome, setOutcome] = useState<Outcome>("idle");
  async function copy() {
    try {
      await navigator.clipboard.writeText(text);
      setOutcome("copied");
    } catch {
      setOutcome("failed");
    }
  }
  return (
    <span className={styles.copy}>
      <Button onClick={() => void copy()} aria-label={`Copy ${label}`}>
        Copy
      </Button>
      <span role="status" className={styles.outcome}>
        {outcome === "copied" ? "Copied" : outcome === "failed" ? "Could not copy: select the text instead" : ""}
      </span>
    </span>
  );
}
