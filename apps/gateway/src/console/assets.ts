import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { CONSOLE_CSS } from "./style.js";

/** One static file of the console: its body, content type, and a name that changes with its content. */
export interface ConsoleAsset {
  name: string;
  type: string;
  body: Uint8Array;
}

/** The file name with the first 10 hex digits of the content's SHA-256: a new build gets a new URL. */
function hashed(base: string, ext: string, body: Uint8Array): string {
  return `${base}.${createHash("sha256").update(body).digest("hex").slice(0, 10)}.${ext}`;
}

let assets: { htmx: ConsoleAsset; css: ConsoleAsset; byName: Map<string, ConsoleAsset> } | undefined;

/**
 * The console's two assets, loaded once: htmx from the htmx.org package in node_modules (no CDN; the
 * console works offline) and the hand-written style sheet. Their names carry a content hash, so they
 * are served with a one-year immutable cache.
 */
export function consoleAssets() {
  if (!assets) {
    const htmxBody = new Uint8Array(readFileSync(createRequire(import.meta.url).resolve("htmx.org/dist/htmx.min.js")));
    const cssBody = new TextEncoder().encode(CONSOLE_CSS);
    const htmx = { name: hashed("htmx", "js", htmxBody), type: "text/javascript; charset=utf-8", body: htmxBody };
    const css = { name: hashed("console", "css", cssBody), type: "text/css; charset=utf-8", body: cssBody };
    // a Map: a path segment such as `__proto__` finds nothing
    assets = { htmx, css, byName: new Map([htmx, css].map((a) => [a.name, a])) };
  }
  return assets;
}
