import type { ReactNode } from "react";
import styles from "./Notice.module.css";

/** A short message in place of content: empty states, errors, loading. */
export function Notice({ title, children, role }: { title: string; children?: ReactNode; role?: "alert" | "status" }) {
  return (
    <div className={styles.notice} role={role}>
      <p className={styles.title}>{title}</p>
      {children}
    </div>
  );
}
