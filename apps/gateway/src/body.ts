import type { IncomingMessage } from "node:http";
import { EssError, parseRequestId } from "@ess/domain";
import type { Context } from "hono";
import type { AppEnv, GatewayDeps } from "./context.js";
import { VENDOR_JSON } from "./errors.js";

/** The path's requestId in canonical form, or a 400 naming the problem. */
export function requireRequestId(raw: string | undefined): string {
  const id = raw === undefined ? null : parseRequestId(raw);
  if (id === null) {
    throw new EssError(
      "INVALID_REQUEST_ID",
      `requestId must be a positive integer of at most 9223372036854775807 (got '${(raw ?? "").slice(0, 40)}')`,
    );
  }
  return id;
}

/** 415 unless the body (Content-Type `raw`) is application/json or the ESS vendor type (parameters allowed). */
export function requireJsonMediaType(raw: string | undefined): void {
  const type = raw?.split(";", 1)[0]?.trim().toLowerCase();
  if (type !== "application/json" && type !== VENDOR_JSON) {
    throw new EssError(
      "UNSUPPORTED_MEDIA_TYPE",
      raw
        ? `Content-Type '${raw.slice(0, 80)}' is not supported; use application/json or ${VENDOR_JSON}`
        : `Content-Type is missing; use application/json or ${VENDOR_JSON}`,
    );
  }
}

function tooLarge(limit: number): EssError {
  return new EssError("PAYLOAD_TOO_LARGE", `the body is larger than ${limit} bytes`);
}

/**
 * Thrown while reading a body the client did not finish sending: the connection closed mid-body or
 * the chunked framing broke. Routine for a server on the internet, so it is answered 400 (if anyone
 * is still listening) and logged at debug, never as an unexpected error.
 */
export class BodyAbortedError extends EssError {
  constructor(cause: unknown) {
    super("INVALID_BODY", "the request body ended before it was complete (connection closed or broken framing)", {
      cause,
    });
  }
}

/** A 413 when the declared Content-Length is over the limit (or no number), before anything is read. */
export function requireDeclaredLength(declared: string, limit: number): void {
  const length = Number(declared);
  if (!Number.isFinite(length) || length > limit) throw tooLarge(limit);
}

/** The error of a body the client broke off, with its debug line (the reason, never the body). */
export function bodyAborted(
  err: unknown,
  deps: GatewayDeps | undefined,
  method: string,
  path: string,
): BodyAbortedError {
  deps?.logDebug?.(
    { method, path, reason: err instanceof Error ? err.message : String(err) },
    "client aborted the request body",
  );
  return new BodyAbortedError(err);
}

/**
 * Reads a body of at most `limit` bytes as UTF-8 text. A declared Content-Length over the limit is
 * refused before reading; a chunked body is counted while it streams and cut off at the limit.
 */
export async function readText(c: Context<AppEnv>, limit: number): Promise<string> {
  const declared = c.req.header("content-length");
  let text: string;
  try {
    if (declared !== undefined) {
      requireDeclaredLength(declared, limit);
      text = Buffer.from(await c.req.arrayBuffer()).toString("utf8");
    } else {
      text = await readLimited(c.req.raw.body, limit);
    }
  } catch (err) {
    if (err instanceof EssError) throw err;
    throw bodyAborted(err, c.get("deps"), c.req.method, c.req.path);
  }
  return text;
}

/**
 * Reads the body of a node:http request that declares its Content-Length (already checked by
 * requireDeclaredLength) as UTF-8 text; rejects with the stream's error when the client breaks it off.
 * A body that arrived whole before the client went away is still the body (as @hono/node-server reads it).
 */
export function readDeclaredText(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  const text = () => (chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks)).toString("utf8");
  if (req.destroyed) {
    if (req.complete && !req.readableDidRead) {
      for (let chunk = req.read() as Buffer | null; chunk !== null; chunk = req.read() as Buffer | null)
        chunks.push(chunk);
      const length = chunks.reduce((n, c) => n + c.length, 0);
      if (length === Number(req.headers["content-length"])) return Promise.resolve(text());
    }
    return Promise.reject(req.errored ?? new Error("Client connection prematurely closed."));
  }
  return new Promise((resolve, reject) => {
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.once("end", () => resolve(text()));
    req.once("error", reject);
    req.once("close", () => {
      if (!req.readableEnded) reject(req.errored ?? new Error("Client connection prematurely closed."));
    });
  });
}

/** Parses a JSON body's text: 400 MALFORMED_JSON when empty or not JSON, naming the position only. */
export function parseJsonText(text: string): unknown {
  if (text.length === 0) throw new EssError("MALFORMED_JSON", "the body is empty; a JSON object is required");
  try {
    return JSON.parse(text);
  } catch {
    // the position only: the text around it may be part of a request handle or another secret
    throw new EssError("MALFORMED_JSON", `the body is not valid JSON: ${describeJsonError(text)}`);
  }
}

/** Reads (as readText) and parses a JSON body of at most `limit` bytes. */
export async function readJson(c: Context<AppEnv>, limit: number): Promise<unknown> {
  return parseJsonText(await readText(c, limit));
}

/** Where and why `text` stops being JSON, as "<what> at line L, column C (character N)"; never its content. */
export function describeJsonError(text: string): string {
  const found = findJsonError(text);
  if (!found) return "it could not be parsed";
  let line = 1;
  let lineStart = 0;
  for (let i = 0; i < found.at; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      lineStart = i + 1;
    }
  }
  return `${found.what} at line ${line}, column ${found.at - lineStart + 1} (character ${found.at + 1})`;
}

const WS = new Set([0x20, 0x09, 0x0a, 0x0d]);
const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const STRING_ESCAPE = /\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})/y;

/**
 * The offset of the first error in `text` as RFC 8259 sees it (what JSON.parse refuses), or null
 * if it is valid. Iterative, so deep nesting cannot overflow the stack.
 */
export function findJsonError(text: string): { at: number; what: string } | null {
  let i = 0;
  const n = text.length;
  // what each open container expects next
  const stack: ("array" | "object")[] = [];
  const skipWs = () => {
    while (i < n && WS.has(text.charCodeAt(i))) i++;
  };
  const unexpected = () =>
    i >= n ? { at: n, what: "unexpected end of input" } : { at: i, what: "unexpected character" };
  const readString = (): { at: number; what: string } | null => {
    i++; // opening quote
    for (;;) {
      if (i >= n) return { at: n, what: "unterminated string" };
      const ch = text.charCodeAt(i);
      if (ch === 0x22) {
        i++;
        return null;
      }
      if (ch === 0x5c) {
        STRING_ESCAPE.lastIndex = i;
        if (!STRING_ESCAPE.test(text)) return { at: i, what: "invalid escape in a string" };
        i = STRING_ESCAPE.lastIndex;
        continue;
      }
      if (ch < 0x20) return { at: i, what: "control character in a string" };
      i++;
    }
  };
  // a property name and its colon; the value follows
  const readKey = (): { at: number; what: string } | null => {
    skipWs();
    if (text[i] !== '"') return i >= n ? unexpected() : { at: i, what: "expected a property name" };
    const bad = readString();
    if (bad) return bad;
    skipWs();
    if (text[i] !== ":") return i >= n ? unexpected() : { at: i, what: "expected ':'" };
    i++;
    return null;
  };
  let expectValue = true;
  for (;;) {
    if (expectValue) {
      skipWs();
      const ch = text[i];
      if (ch === "{" || ch === "[") {
        const close = ch === "{" ? "}" : "]";
        stack.push(ch === "{" ? "object" : "array");
        i++;
        skipWs();
        if (text[i] === close) {
          stack.pop();
          i++;
          expectValue = false;
        } else if (ch === "{") {
          const bad = readKey();
          if (bad) return bad;
        }
        continue;
      }
      if (ch === '"') {
        const bad = readString();
        if (bad) return bad;
      } else if (ch !== undefined && ["true", "false", "null"].some((w) => text.startsWith(w, i))) {
        i += ch === "f" ? 5 : 4;
      } else {
        NUMBER.lastIndex = i;
        if (!NUMBER.test(text)) return unexpected();
        i = NUMBER.lastIndex;
      }
      expectValue = false;
      continue;
    }
    skipWs();
    const top = stack.at(-1);
    if (!top) return i < n ? { at: i, what: "unexpected data after the JSON value" } : null;
    const close = top === "object" ? "}" : "]";
    if (text[i] === close) {
      stack.pop();
      i++;
    } else if (text[i] === ",") {
      i++;
      if (top === "object") {
        const bad = readKey();
        if (bad) return bad;
      }
      expectValue = true;
    } else {
      return i >= n ? unexpected() : { at: i, what: `expected ',' or '${close}'` };
    }
  }
}

async function readLimited(stream: ReadableStream<Uint8Array> | null, limit: number): Promise<string> {
  if (!stream) return "";
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      // the answer is 413 whatever happens to the rest of the body; a failed cancel changes nothing
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}
