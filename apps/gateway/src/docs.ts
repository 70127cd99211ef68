import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { buildOpenApi } from "@ess/contract";
import type { Hono } from "hono";
import type { AppEnv } from "./context.js";

// a Map, not an object literal: a path segment such as `__proto__` or `constructor` must not find
// a prototype property
const ASSETS: ReadonlyMap<string, string> = new Map([
  ["swagger-ui.css", "text/css; charset=utf-8"],
  ["swagger-ui-bundle.js", "text/javascript; charset=utf-8"],
]);

let assetDir: string | undefined;
const cache = new Map<string, Buffer>();

/** Swagger UI's files come from the swagger-ui-dist package: the page needs no CDN, works offline. */
function asset(name: string): Buffer {
  let data = cache.get(name);
  if (!data) {
    assetDir ??= dirname(createRequire(import.meta.url).resolve("swagger-ui-dist/package.json"));
    data = readFileSync(join(assetDir, name));
    cache.set(name, data);
  }
  return data;
}

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>ESS callback gateway — API reference</title>
  <link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
  <div id="ui"></div>
  <script src="/docs/swagger-ui-bundle.js"></script>
  <script src="/docs/init.js"></script>
</body>
</html>`;

const INIT = `window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#ui", deepLinking: true, tryItOutEnabled: false });`;

/** GET /openapi.json (generated from the zod schemas) and GET /docs (interactive reference). */
export function docsRoutes(app: Hono<AppEnv>): void {
  let spec: string | undefined;
  app.get("/openapi.json", (c) => {
    spec ??= JSON.stringify(buildOpenApi({ version: "0.1.0" }));
    return c.body(spec, 200, { "content-type": "application/json" });
  });
  app.get("/docs", (c) => c.html(PAGE));
  // init.js is answered by the /docs/:file route: a literal path next to a parameter at the same
  // position would make Hono fall back from its RegExp router to the slower trie router for every request
  app.get("/docs/:file", (c) => {
    const file = c.req.param("file");
    if (file === "init.js") return c.body(INIT, 200, { "content-type": "text/javascript; charset=utf-8" });
    const type = ASSETS.get(file);
    if (!type) return c.notFound();
    return c.body(new Uint8Array(asset(file)), 200, { "content-type": type, "cache-control": "public, max-age=86400" });
  });
}
