import { describe, expect, it } from "vitest";
import { formatExecutionContext, parseExecutionContext, signWebhook, verifyWebhook } from "./scheduler.js";

describe("requestExecutionContext", () => {
  it("round-trips, the handle keeping its colons", () => {
    const ctx = formatExecutionContext("42", "a:b:c");
    expect(ctx).toBe("ess1:42:a:b:c");
    expect(parseExecutionContext(ctx)).toEqual({ requestId: "42", requestHandle: "a:b:c" });
  });

  it("canonicalises the id ('007' is request 7)", () => {
    expect(parseExecutionContext("ess1:007:h").requestId).toBe("7");
  });

  it.each(["", "ess1", "ess1:42", "ESS1:42:h", "ess2:42:h", "ess1::h", "ess1:0:h", "ess1:-1:h", "ess1:42:"])(
    "rejects %j with INVALID_EXECUTION_CONTEXT",
    (raw) => {
      expect(() => parseExecutionContext(raw)).toThrow(expect.objectContaining({ code: "INVALID_EXECUTION_CONTEXT" }));
    },
  );
});

describe("webhook signatures", () => {
  // reference value computed independently: HMAC-SHA256("0123456789abcdef", '1700000000000.{"a":1}')
  const REF = "sha256=de32ced690ba7742b66a8b93053efa2a98f3a8fc16b2907325d41944cf17d735";

  it("signs timestamp + '.' + body with HMAC-SHA256, hex", () => {
    expect(signWebhook("0123456789abcdef", "1700000000000", '{"a":1}')).toBe(REF);
  });

  it("verifies only the exact secret, timestamp and body", () => {
    expect(verifyWebhook("0123456789abcdef", "1700000000000", '{"a":1}', REF)).toBe(true);
    expect(verifyWebhook("0123456789abcdeF", "1700000000000", '{"a":1}', REF)).toBe(false);
    expect(verifyWebhook("0123456789abcdef", "1700000000001", '{"a":1}', REF)).toBe(false);
    expect(verifyWebhook("0123456789abcdef", "1700000000000", '{"a":2}', REF)).toBe(false);
    expect(verifyWebhook("0123456789abcdef", "1700000000000", '{"a":1}', "sha256=00")).toBe(false);
  });
});
