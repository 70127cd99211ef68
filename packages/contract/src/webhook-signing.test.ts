import { Webhook } from "standardwebhooks";
import { describe, expect, it } from "vitest";
import { newWebhookSecret, signWebhook, verifyWebhook, WEBHOOK_HEADERS, webhookKey } from "./webhook-signing.js";

// the test vector of the Standard Webhooks reference libraries
const SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const ID = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS = "1614265330";
const BODY = '{"test": 2432232314}';
const SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

const headers = (signature: string, ts = TS, id = ID) => ({
  [WEBHOOK_HEADERS.id]: id,
  [WEBHOOK_HEADERS.timestamp]: ts,
  [WEBHOOK_HEADERS.signature]: signature,
});

describe("Standard Webhooks signatures", () => {
  it("signs the reference vector as the standard does", () => {
    expect(signWebhook([SECRET], ID, TS, BODY)).toBe(SIG);
  });

  it("two secrets (a rotation): both signatures, space-separated, each verifies with the reference library", () => {
    const other = newWebhookSecret();
    const now = Math.floor(Date.now() / 1000);
    const header = signWebhook([other, SECRET], ID, String(now), BODY);
    expect(header.split(" ")).toHaveLength(2);
    for (const s of [other, SECRET]) {
      expect(new Webhook(s).verify(BODY, headers(header, String(now)))).toEqual({ test: 2432232314 });
      expect(verifyWebhook(s, headers(header, String(now)), BODY)).toBeNull();
    }
    expect(() => new Webhook(newWebhookSecret()).verify(BODY, headers(header, String(now)))).toThrow();
  });

  it("verifies only the exact secret, id, timestamp and body, within the tolerance", () => {
    const nowSeconds = Number(TS);
    expect(verifyWebhook(SECRET, headers(SIG), BODY, { nowSeconds })).toBeNull();
    expect(verifyWebhook(newWebhookSecret(), headers(SIG), BODY, { nowSeconds })).toBe("no-matching-signature");
    expect(verifyWebhook(SECRET, headers(SIG, TS, "msg_other"), BODY, { nowSeconds })).toBe("no-matching-signature");
    expect(verifyWebhook(SECRET, headers(SIG), `${BODY} `, { nowSeconds })).toBe("no-matching-signature");
    expect(verifyWebhook(SECRET, headers(SIG), BODY, { nowSeconds: nowSeconds + 301 })).toBe("stale-timestamp");
    expect(verifyWebhook(SECRET, headers(SIG, "12x"), BODY, { nowSeconds })).toBe("bad-timestamp");
    expect(verifyWebhook(SECRET, { [WEBHOOK_HEADERS.id]: ID }, BODY, { nowSeconds })).toBe("missing-headers");
  });

  it("generates whsec_ secrets of 32 random bytes; refuses malformed ones", () => {
    const s = newWebhookSecret();
    expect(s).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(webhookKey(s)?.length).toBe(32);
    expect(s).not.toBe(newWebhookSecret());
    for (const bad of ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_short", "whsec_!!!!", "whsec_"]) {
      expect(webhookKey(bad)).toBeNull();
    }
  });
});
