// URLs of the app's pages, built in one place so deep links stay stable.
export function mailboxPath(mailbox: string, folder = "INBOX"): string {
  return `/mail/${encodeURIComponent(mailbox)}/${encodeURIComponent(folder)}`;
}

export function messagePath(mailbox: string, folder: string, uid: string): string {
  return `${mailboxPath(mailbox, folder)}/${encodeURIComponent(uid)}`;
}
