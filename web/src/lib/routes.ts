// URLs of the app's pages, built in one place so deep links stay stable.
export function mailboxPath(mailbox: string, folder = "INBOX"): string {
  return `/mail/${encodeURIComponent(mailbox)}/${encodeURIComponent(folder)}`;
}

export function messagePath(mailbox: string, folder: string, uid: string): string {
  return `${mailboxPath(mailbox, folder)}/${encodeURIComponent(uid)}`;
}

export const ALL_MAIL_PATH = "/all";

/** A message opened from "All mail": the list stays the one across mailboxes. */
export function allMailMessagePath(mailbox: string, folder: string, uid: string): string {
  return `${ALL_MAIL_PATH}/${encodeURIComponent(mailbox)}/${encodeURIComponent(folder)}/${encodeURIComponent(uid)}`;
}
