// GraphiQL at /graphql, from our own files (no CDN). A browser session (the refresh
// cookie) signs its requests in; headers typed in GraphiQL's Headers pane win.
import { explorerPlugin } from "@graphiql/plugin-explorer";
import { createGraphiQLFetcher } from "@graphiql/toolkit";
import { GraphiQL } from "graphiql";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { getAccessToken, refresh } from "@/lib/session";
import { fixAsTheyAppear, focusable, label, tabButtonIsTheTab } from "./accessibility";
import "graphiql/style.css";
import "@graphiql/plugin-explorer/style.css";
import "./graphiql-accessibility.css";
import "./graphiql-page.css";

function authorization(): Record<string, string> {
  const token = getAccessToken();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
const fetcher = createGraphiQLFetcher({
  url: "/graphql",
  subscriptionUrl: `${scheme}//${window.location.host}/graphql`,
  fetch: (input, init) =>
    fetch(input, { ...init, headers: { ...authorization(), ...(init?.headers as Record<string, string>) } }),
  wsConnectionParams: () => authorization(),
});

const plugins = [explorerPlugin()];

async function start() {
  await refresh().catch(() => false);
  const root = document.getElementById("graphiql");
  if (!root) return;
  fixAsTheyAppear(document.body, [
    [".graphiql-query-editor textarea", label("Query editor")],
    [".graphiql-editor-tool .graphiql-editor:nth-child(1) textarea", label("Variables editor")],
    [".graphiql-editor-tool .graphiql-editor:nth-child(2) textarea", label("Headers editor")],
    [".graphiql-response textarea", label("Response")],
    [".CodeMirror-scroll", focusable],
    [".graphiql-tabs > li", tabButtonIsTheTab],
    [".graphiql-explorer-root select, .docExplorerWrap select", label("Operation type")],
  ]);
  createRoot(root).render(
    <StrictMode>
      <GraphiQL fetcher={fetcher} plugins={plugins} />
    </StrictMode>,
  );
}

void start();
