import { useState } from "react";
import styles from "./Viewer.module.css";

export function HeadersTab({ headers }: { headers: Record<string, string> }) {
  const [filter, setFilter] = useState("");
  const needle = filter.trim().toLowerCase();
  const rows = Object.entries(headers).filter(
    ([name, value]) => !needle || name.toLowerCase().includes(needle) || value.toLowerCase().includes(needle),
  );
  return (
    <div className={styles.tabBody}>
      <label className={styles.search}>
        Filter headers
        <input type="search" value={filter} onChange={(event) => setFilter(event.target.value)} />
      </label>
      <table className={styles.table}>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Value</th>
          </tr>
        </thead>
        <tbody>
          {rows.map(([name, value]) => (
            <tr key={name}>
              <th scope="row">{name}</th>
              <td>{value}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
