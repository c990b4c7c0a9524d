// Builds the srcdoc of the sandboxed frame that shows a message's HTML.
//
// The frame has `sandbox` without allow-scripts and allow-same-origin, so nothing in the
// mail runs and it cannot reach the app. Its own CSP (a <meta> first in <head>) blocks
// every remote load until the user asks for remote content; a srcdoc frame also inherits
// the app's policy, so both must allow what it shows. The HTML is parsed with DOMParser
// (an inert document: no scripts run, nothing loads) only to make every link open in a
// new tab without opener or referrer.

const BLOCKED =
  "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src data:; form-action 'none'";
const REMOTE =
  "default-src 'none'; img-src data: http: https:; style-src 'unsafe-inline' http: https:; " +
  "font-src data: http: https:; form-action 'none'";

const BASE_STYLE =
  "body{margin:12px;font-family:system-ui,sans-serif;color:#1b1f24;background:#fff;" +
  "overflow-wrap:anywhere}img{max-width:100%;height:auto}";

function escapeAttribute(value: string): string {
  return value.replace(/&/g, "&amp;").replace(/"/g, "&quot;");
}

export function mailFrameDocument(
  html: string,
  allowRemote: boolean,
  inlineImages: ReadonlyMap<string, string> = new Map(),
): string {
  const parsed = new DOMParser().parseFromString(html, "text/html");
  // cid: images come from the message's own parts, as data: URLs; unknown ones go.
  for (const image of parsed.querySelectorAll<HTMLElement>("[src^='cid:' i]")) {
    const id = (image.getAttribute("src") ?? "").slice(4).replace(/^<|>$/g, "").toLowerCase();
    const data = inlineImages.get(id);
    if (data) image.setAttribute("src", data);
    else image.removeAttribute("src");
  }
  for (const link of parsed.querySelectorAll("a[href], area[href]")) {
    link.setAttribute("target", "_blank");
    link.setAttribute("rel", "noopener noreferrer");
  }
  const policy = allowRemote ? REMOTE : BLOCKED;
  const head =
    `<meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="${escapeAttribute(policy)}">` +
    `<meta name="referrer" content="no-referrer"><style>${BASE_STYLE}</style>`;
  return `<!doctype html><html><head>${head}${parsed.head.innerHTML}</head><body>${parsed.body.innerHTML}</body></html>`;
}

/** Whether the message's HTML refers to anything outside itself (http, https, protocol-relative). */
export function hasRemoteContent(html: string): boolean {
  return /\b(?:src|href|background|srcset)\s*=\s*["']?\s*(?:https?:)?\/\//i.test(html) ||
    /url\(\s*["']?\s*(?:https?:)?\/\//i.test(html);
}
