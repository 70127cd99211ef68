import { describe, expect, it } from "vitest";
import { formatExecutionContext, parseExecutionContext } from "./scheduler.js";

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
