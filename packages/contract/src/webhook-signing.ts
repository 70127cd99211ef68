import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { z } from "zod";

/**
 * Standard Webhooks (standardwebhooks.com) signing: each delivery carries `webhook-id`,
 * `webhook-timestamp` (seconds) and `webhook-signature`, a space-separated list of
 * `v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`, one per valid secret (two during a rotation).
 */
export const WEBHOOK_HEADERS = {
  /** the event's id: the same on every attempt of one event, receivers deduplicate on it */
  id: "webhook-id",
  /** seconds since the epoch when this attempt was signed */
  timestamp: "webhook-timestamp",
  /** `v1,<base64>` per secret, space-separated */
  signature: "webhook-signature",
} as const;

/** Prefix of a webhook secret; base64 of the HMAC key follows. */
export const WEBHOOK_SECRET_PREFIX = "whsec_";
/** Bytes of a generated secret's key. */
const SECRET_BYTES = 32;
/** Age (either way) past which a receiver rejects a timestamp by default: five minutes, as the standard suggests. */
export const WEBHOOK_TOLERANCE_SECONDS = 300;

/** A webhook secret as a caller may give it: `whsec_` + base64 of 24 to 64 bytes. */
export const webhookSecretSchema = z
  .string()
  .max(120)
  .refine((s) => webhookKey(s) !== null, "secret must be 'whsec_' followed by the base64 of 24 to 64 random bytes");

/** The HMAC key of a `whsec_` secret, or null when the secret is not one. */
export function webhookKey(secret: string): Buffer | null {
  if (!secret.startsWith(WEBHOOK_SECRET_PREFIX)) return null;
  const b64 = secret.slice(WEBHOOK_SECRET_PREFIX.length);
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(b64) || b64.length % 4 !== 0) return null;
  const key = Buffer.from(b64, "base64");
  return key.length >= 24 && key.length <= 64 ? key : null;
}

/** A new random secret, `whsec_<base64 of 32 bytes>`. */
export function newWebhookSecret(): string {
  return `${WEBHOOK_SECRET_PREFIX}${randomBytes(SECRET_BYTES).toString("base64")}`;
}

function sign(key: Buffer, id: string, timestamp: string, body: string): string {
  return `v1,${createHmac("sha256", key).update(`${id}.${timestamp}.${body}`).digest("base64")}`;
}

/** The `webhook-signature` value: one `v1,…` per secret (newest first), space-separated. */
export function signWebhook(secrets: readonly string[], id: string, timestamp: string, body: string): string {
  return secrets
    .map((s) => {
      const key = webhookKey(s);
      if (!key) throw new Error("not a whsec_ webhook secret");
      return sign(key, id, timestamp, body);
    })
    .join(" ");
}

/** Why a delivery did not verify. */
export type WebhookVerifyFailure = "missing-headers" | "bad-timestamp" | "stale-timestamp" | "no-matching-signature";

/**
 * Verifies a delivery as a receiver does: the headers are there, the timestamp is within `toleranceSeconds`
 * of now, and one `v1` signature of the header matches (compared in constant time). Returns null when it
 * verifies, else why not.
 */
export function verifyWebhook(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  opts: { toleranceSeconds?: number | undefined; nowSeconds?: number | undefined } = {},
): WebhookVerifyFailure | null {
  const get = (name: string) => {
    const v = headers[name] ?? headers[name.toLowerCase()];
    return Array.isArray(v) ? v[0] : v;
  };
  const id = get(WEBHOOK_HEADERS.id);
  const timestamp = get(WEBHOOK_HEADERS.timestamp);
  const signatures = get(WEBHOOK_HEADERS.signature);
  if (!id || !timestamp || !signatures) return "missing-headers";
  if (!/^[0-9]{1,12}$/.test(timestamp)) return "bad-timestamp";
  const now = opts.nowSeconds ?? Math.floor(Date.now() / 1000);
  if (Math.abs(now - Number(timestamp)) > (opts.toleranceSeconds ?? WEBHOOK_TOLERANCE_SECONDS)) {
    return "stale-timestamp";
  }
  const key = webhookKey(secret);
  if (!key) throw new Error("not a whsec_ webhook secret");
  const want = Buffer.from(sign(key, id, timestamp, body));
  for (const candidate of signatures.split(" ")) {
    const got = Buffer.from(candidate);
    if (got.length === want.length && timingSafeEqual(got, want)) return null;
  }
  return "no-matching-signature";
}
