import { EssError, parseRequestId } from "@ess/domain";
import type { Context } from "hono";
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

/** 415 unless the body is application/json or the ESS vendor type (parameters allowed). */
export function requireJsonMediaType(c: Context): void {
  const raw = c.req.header("content-type");
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
 * Reads and parses a JSON body of at most `limit` bytes. A declared Content-Length over the limit
 * is refused before reading; a chunked body is counted while it streams and cut off at the limit.
 */
export async function readJson(c: Context, limit: number): Promise<unknown> {
  const declared = c.req.header("content-length");
  let text: string;
  if (declared !== undefined) {
    const length = Number(declared);
    if (!Number.isFinite(length) || length > limit) throw tooLarge(limit);
    text = Buffer.from(await c.req.arrayBuffer()).toString("utf8");
  } else {
    text = await readLimited(c.req.raw.body, limit);
  }
  if (text.length === 0) throw new EssError("MALFORMED_JSON", "the body is empty; a JSON object is required");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new EssError("MALFORMED_JSON", `the body is not valid JSON: ${(err as Error).message}`);
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
      await reader.cancel().catch(() => {});
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString("utf8");
}
