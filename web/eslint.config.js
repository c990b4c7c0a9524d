import js from "@eslint/js";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules", ".schema", "src/lib/graphql-env.d.ts"] },
  {
    files: ["**/*.{ts,tsx}"],
    extends: [js.configs.recommended, ...tseslint.configs.recommended],
    languageOptions: { globals: globals.browser },
    plugins: { "react-hooks": reactHooks },
    rules: { ...reactHooks.configs.recommended.rules },
  },
  {
    files: ["scripts/**/*.mjs", "eslint.config.js"],
    extends: [js.configs.recommended],
    languageOptions: { globals: globals.node },
  },
  // Imports go one way: app -> features -> components/lib. A feature reaches another
  // only through nothing at all (the app composes them); nobody reaches into a feature's
  // files except through its index.
  {
    files: ["src/features/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            { group: ["@/features/*", "@/app/*", "@/pages/*"], message: "A feature imports only components/ and lib/." },
            { group: ["../*"], message: "Use @/components or @/lib; features do not reach outside themselves." },
          ],
        },
      ],
    },
  },
  {
    files: ["src/app/**", "src/pages/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: [{ group: ["@/features/*/*"], message: "Import a feature through its index." }] },
      ],
    },
  },
  {
    files: ["src/components/**", "src/lib/**"],
    rules: {
      "no-restricted-imports": [
        "error",
        { patterns: [{ group: ["@/features/*", "@/app/*", "@/pages/*"], message: "Shared code depends on no feature." }] },
      ],
    },
  },
);
