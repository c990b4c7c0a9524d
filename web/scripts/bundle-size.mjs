// Prints the gzipped size of what the app's first page loads (index.html's scripts,
// module preloads and stylesheets), and fails above the budget of issue 13 (200 KB).
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const BUDGET = 200 * 1024;
const build = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "mailcue_server", "api", "webui");
const html = readFileSync(join(build, "index.html"), "utf8");
const files = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.(?:js|css))"/g)].map((match) => match[1]);
let total = 0;
for (const file of files) {
  const size = gzipSync(readFileSync(join(build, file)), { level: 9 }).length;
  total += size;
  console.log(`${(size / 1024).toFixed(1).padStart(7)} KB  ${file}`);
}
console.log(`${(total / 1024).toFixed(1).padStart(7)} KB  first page JS+CSS, gzipped (budget ${BUDGET / 1024} KB)`);
if (total > BUDGET) process.exit(1);
