// Single-key shortcuts (j, k, /, ?...): one listener per key, ignored while the user
// types in a field or holds a modifier.
import { useEffect, useRef } from "react";

function typing(target: EventTarget | null): boolean {
  if (!(target instanceof HTMLElement)) return false;
  return target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName);
}

export function useShortcut(keys: string[], onKey: (event: KeyboardEvent) => void): void {
  const handler = useRef(onKey);
  useEffect(() => {
    handler.current = onKey;
  });
  const joined = keys.join("\u0000");
  useEffect(() => {
    const wanted = new Set(joined.split("\u0000"));
    function listener(event: KeyboardEvent) {
      if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
      if (!wanted.has(event.key)) return;
      event.preventDefault();
      handler.current(event);
    }
    window.addEventListener("keydown", listener);
    return () => window.removeEventListener("keydown", listener);
  }, [joined]);
}
