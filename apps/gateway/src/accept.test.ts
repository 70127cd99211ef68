import { setFlagsFromString } from "node:v8";
import { describe, expect, it } from "vitest";
import { admitted } from "./accept.js";

// V8's own test of whether two objects share a hidden class, compiled after the flag allows it
setFlagsFromString("--allow-natives-syntax");
const sameHiddenClass = new Function("a", "b", "return %HaveSameMap(a, b)") as (a: object, b: object) => boolean;

describe("the admitted callback", () => {
  it("carries the callback's fields, stamped now, with the trace", () => {
    const before = Date.now();
    const cb = admitted({ requestId: "r-1", handle: "h", status: "UPDATE", message: "m" }, "00-trace");
    expect(cb).toEqual({
      requestId: "r-1",
      handle: "h",
      status: "UPDATE",
      message: "m",
      acceptedAt: expect.any(Number),
      traceparent: "00-trace",
    });
    expect(cb.acceptedAt).toBeGreaterThanOrEqual(before);
  });

  it("has one hidden class for every callback, with or without message and trace", () => {
    // a spread copy with fields added would get a class of its own after a few calls, and every
    // property read of it on the callback path would miss its inline cache
    const made = Array.from({ length: 200 }, (_, i) =>
      admitted(
        {
          requestId: `r-${i}`,
          handle: `h-${i}`,
          status: i % 2 ? "UPDATE" : "SUCCESS",
          message: i % 3 ? undefined : "m",
        },
        i % 5 ? undefined : "00-trace",
      ),
    );
    for (const cb of made) expect(sameHiddenClass(cb, made[0] as object)).toBe(true);
  });
});
