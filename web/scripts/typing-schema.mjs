// Writes the schema gql.tada types the UI from: ../schema.graphql, minus object-valued
// defaults of custom scalars (`headers: StringMap! = {  }`), which graphql-js cannot turn
// back into an AST when it builds the introspection. Nothing else is changed.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const web = join(dirname(fileURLToPath(import.meta.url)), "..");
const source = readFileSync(join(web, "..", "schema.graphql"), "utf8");
const cleaned = source.replace(/(:\s*[A-Za-z_][A-Za-z0-9_]*!?)\s*=\s*\{\s*\}/g, "$1");
mkdirSync(join(web, ".schema"), { recursive: true });
writeFileSync(join(web, ".schema", "schema.graphql"), cleaned);
