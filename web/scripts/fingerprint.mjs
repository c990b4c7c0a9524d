// The fingerprint of web/'s sources, stored next to the build that ships inside the
// Python package (mailcue_server/api/webui/SOURCES.sha256). `--write` records it after
// a build; `--check` fails when the sources changed since (the build is stale: run
// `npm run build` in web/ and commit the result). CI runs the check, like openapi.json's.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const output = join(web, "..", "mailcue_server", "api", "webui", "SOURCES.sha256");
const ROOT_FILES = [
  "index.html",
  "graphiql.html",
  "swagger.html",
  "package.json",
  "package-lock.json",
  "vite.config.ts",
  "tsconfig.json",
];
const TREES = ["src", "public"];
// Generated for the type check only; it never reaches the build.
const SKIP = new Set(["src/lib/graphql-env.d.ts"]);

function walk(directory) {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) => {
    const path = join(directory, entry.name);
    return entry.isDirectory() ? walk(path) : [path];
  });
}

function fingerprint() {
  const files = [...ROOT_FILES.map((name) => join(web, name)), ...TREES.flatMap((tree) => walk(join(web, tree)))]
    .map((path) => relative(web, path).split(sep).join("/"))
    .filter((name) => !SKIP.has(name))
    .sort();
  const hash = createHash("sha256");
  for (const name of files) {
    const content = readFileSync(join(web, name));
    hash.update(`${name}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest("hex");
}

const mode = process.argv[2];
const current = fingerprint();
if (mode === "--write") {
  writeFileSync(output, `${current}\n`);
  console.log(`web/ sources ${current}`);
} else if (mode === "--check") {
  let recorded = "";
  try {
    recorded = readFileSync(output, "utf8").trim();
  } catch {
    // no build yet
  }
  if (recorded !== current) {
    console.error(
      "mailcue_server/api/webui is stale: web/ changed since it was built. Run `npm ci && npm run build` in web/ and commit the result.",
    );
    process.exit(1);
  }
  console.log("web build is up to date");
} else {
  console.error("usage: fingerprint.mjs --write | --check");
  process.exit(2);
}
