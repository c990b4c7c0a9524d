import type { KeyboardEvent } from "react";
import styles from "./Viewer.module.css";

export type TabName = "html" | "text" | "headers" | "raw" | "parts";

const LABELS: Record<TabName, string> = {
  html: "HTML",
  text: "Text",
  headers: "Headers",
  raw: "Raw",
  parts: "Parts",
};

interface Props {
  current: TabName;
  onChange: (tab: TabName) => void;
  hasHtml: boolean;
}

/** WAI-ARIA tabs: arrow keys move between them. */
export function Tabs({ current, onChange, hasHtml }: Props) {
  const names = (Object.keys(LABELS) as TabName[]).filter((name) => name !== "html" || hasHtml);
  function onKeyDown(event: KeyboardEvent<HTMLDivElement>) {
    const step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
    if (!step) return;
    const next = names[(names.indexOf(current) + step + names.length) % names.length];
    if (next) {
      onChange(next);
      document.getElementById(`tab-${next}`)?.focus();
    }
  }
  return (
    <div className={styles.tabs} role="tablist" aria-label="Views of the message" onKeyDown={onKeyDown}>
      {names.map((name) => (
        <button
          key={name}
          id={`tab-${name}`}
          type="button"
          role="tab"
          aria-selected={name === current}
          aria-controls="viewer-panel"
          tabIndex={name === current ? 0 : -1}
          className={name === current ? `${styles.tab} ${styles.tabActive}` : styles.tab}
          onClick={() => onChange(name)}
        >
          {LABELS[name]}
        </button>
      ))}
    </div>
  );
}
