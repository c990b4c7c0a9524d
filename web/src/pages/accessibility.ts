// Third-party pages (GraphiQL, Swagger UI) draw controls we do not render ourselves; this
// names or fixes them as they appear, so axe-core finds nothing serious on those pages.

type Fix = [selector: string, apply: (element: HTMLElement) => void];

/** Applies each fix to every matching element now and whenever the page adds one. */
export function fixAsTheyAppear(root: HTMLElement, fixes: Fix[]): void {
  const run = () => {
    for (const [selector, apply] of fixes) {
      root.querySelectorAll<HTMLElement>(selector).forEach(apply);
    }
  };
  run();
  new MutationObserver(run).observe(root, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: ["role", "aria-selected", "class"],
  });
}

export function label(text: string): (element: HTMLElement) => void {
  return (element) => {
    if (element.getAttribute("aria-label") !== text) element.setAttribute("aria-label", text);
  };
}

export function focusable(element: HTMLElement): void {
  if (element.tabIndex !== 0) element.tabIndex = 0;
}

/** A tab drawn as <li role="tab"> around its own button: the button becomes the tab. */
export function tabButtonIsTheTab(item: HTMLElement): void {
  const button = item.querySelector<HTMLElement>("button");
  if (!button) return;
  if (item.getAttribute("role") !== "presentation") item.setAttribute("role", "presentation");
  if (item.hasAttribute("aria-selected")) item.removeAttribute("aria-selected");
  const selected = String(item.classList.contains("graphiql-tab-active"));
  if (button.getAttribute("role") !== "tab") button.setAttribute("role", "tab");
  if (button.getAttribute("aria-selected") !== selected) button.setAttribute("aria-selected", selected);
}
