// Line icons for the RFC 6154 special-use folders, drawn here so the shell needs no icon
// font or emoji. Decorative: the folder's name beside it is what assistive tech reads.
const PATHS: Record<string, string> = {
  inbox: "M3 13h5l1.5 3h5l1.5-3h5M5 5h14l2 8v6H3v-6z",
  "\\Sent": "M3 11l18-8-8 18-2-8z M11 13l10-10",
  "\\Drafts": "M4 20h4L19 9l-4-4L4 16z M13 7l4 4",
  "\\Trash": "M4 7h16 M9 7V4h6v3 M6 7l1 13h10l1-13 M10 11v6 M14 11v6",
  "\\Junk": "M12 3l9 16H3z M12 10v4 M12 16.5v.5",
  "\\Archive": "M3 4h18v4H3z M5 8v12h14V8 M10 12h4",
  "\\All": "M4 6h16 M4 12h16 M4 18h16",
  folder: "M3 6h6l2 2h10v11H3z",
};

/** The icon of a folder: its special use, INBOX's own, or a plain folder. */
export function FolderIcon({ name, specialUse }: { name: string; specialUse?: string | null }) {
  const key = specialUse && specialUse in PATHS ? specialUse : name === "INBOX" ? "inbox" : "folder";
  return (
    <svg
      viewBox="0 0 24 24"
      width="16"
      height="16"
      aria-hidden="true"
      focusable="false"
      fill="none"
      stroke="currentColor"
      strokeWidth="1.8"
      strokeLinecap="round"
      strokeLinejoin="round"
    >
      <path d={PATHS[key]} />
    </svg>
  );
}
