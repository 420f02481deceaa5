// The API's documentation: Swagger UI (loaded before this file from the fastapi-offline package) on our own
// OpenAPI document. No inline script, so the page runs under the same Content-Security-Policy as the others.
const root = document.getElementById("swagger-ui");
window.SwaggerUIBundle({ url: root.dataset.openapi, domNode: root, deepLinking: true, queryConfigEnabled: false });
