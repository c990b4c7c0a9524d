// Swagger UI at /api/docs, from our own files (no CDN).
import SwaggerUIBundle from "swagger-ui-dist/swagger-ui-bundle.js";
import "swagger-ui-dist/swagger-ui.css";

const root = document.getElementById("swagger-ui");
if (root) {
  SwaggerUIBundle({
    url: "/api/openapi.json",
    domNode: root,
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
}
