// Swagger UI at /api/docs, from our own files (no CDN).
import SwaggerUIBundle from "swagger-ui-dist/swagger-ui-bundle.js";
import "swagger-ui-dist/swagger-ui.css";
import "./swagger-accessibility.css";

const root = document.getElementById("swagger-ui");
if (root) {
  SwaggerUIBundle({
    url: "/api/openapi.json",
    domNode: root,
    // Deep links put a link inside each operation's toggle button (nested controls).
    deepLinking: false,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
}
