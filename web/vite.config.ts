import { fileURLToPath, URL } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// Three pages, each its own entry: the app, GraphiQL (/graphql) and Swagger UI (/api/docs).
// The build lands inside the Python package, which serves it (mailcue_server/api/static_ui.py).
export default defineConfig({
  plugins: [react()],
  resolve: { alias: { "@": fileURLToPath(new URL("./src", import.meta.url)) } },
  build: {
    outDir: "../mailcue_server/api/webui",
    emptyOutDir: true,
    assetsDir: "assets",
    // Inline nothing as data: URLs into scripts; every asset is a hashed file.
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 4000,
    rollupOptions: {
      input: {
        index: fileURLToPath(new URL("./index.html", import.meta.url)),
        graphiql: fileURLToPath(new URL("./graphiql.html", import.meta.url)),
        swagger: fileURLToPath(new URL("./swagger.html", import.meta.url)),
      },
    },
  },
  server: {
    proxy: {
      "/api": "http://127.0.0.1:8088",
      "/graphql": { target: "http://127.0.0.1:8088", ws: true },
    },
  },
});
