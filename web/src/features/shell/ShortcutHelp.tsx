import { useEffect, useRef, useState } from "react";
import { Button } from "@/components/Button";
import { useShortcut } from "@/lib/shortcuts";
import styles from "./Shell.module.css";

const SHORTCUTS: [string, string][] = [
  ["j / k", "Next / previous message"],
  ["u", "Back to the list"],
  ["/", "Search this folder"],
  ["d or Delete", "Delete the open message"],
  ["?", "This help"],
];

/** The keyboard help, opened with "?" (a modal dialog: Escape closes it). */
export function ShortcutHelp() {
  const [open, setOpen] = useState(false);
  const dialog = useRef<HTMLDialogElement>(null);
  useShortcut(["?"], () => setOpen(true));
  useEffect(() => {
    const element = dialog.current;
    if (!element) return;
    if (open && !element.open) element.showModal();
    if (!open && element.open) element.close();
  }, [open]);
  return (
    <dialog ref={dialog} className={styles.help} aria-labelledby="shortcut-title" onClose={() => setOpen(false)}>
      <h2 id="shortcut-title">Keyboard shortcuts</h2>
      <table>
        <tbody>
          {SHORTCUTS.map(([keys, action]) => (
            <tr key={keys}>
              <th scope="row">
                <kbd>{keys}</kbd>
              </th>
              <td>{action}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Button onClick={() => setOpen(false)}>Close</Button>
    </dialog>
  );
}
