import { EssError } from "@ess/domain";
import { describe, expect, it } from "vitest";
import { callbackBodySchema, parseCallbackBody } from "./schemas.js";

/** What the zod schema alone answers: the parsed body, or the error's code and detail. */
function viaSchema(value: unknown): unknown {
  const r = callbackBodySchema.safeParse(value);
  return r.success ? r.data : "rejected";
}

function viaFastPath(value: unknown): unknown {
  try {
    return parseCallbackBody(value);
  } catch (err) {
    if (err instanceof EssError) return "rejected";
    throw err;
  }
}

describe("parseCallbackBody (fast path) answers exactly as callbackBodySchema", () => {
  const long = "é".repeat(1500);
  const inherited = Object.assign(Object.create({ extra: 1 }), { requestHandle: "h", status: "UPDATE" });
  it.each([
    [{ requestHandle: "h", status: "UPDATE" }],
    [{ status: "SUCCESS", requestHandle: "h" }],
    [{ requestHandle: "h", status: "WARNING", statusMessage: "w" }],
    [{ requestHandle: "h", status: "ERROR", statusMessage: "" }],
    [{ requestHandle: "h", status: "PAUSE", statusMessage: long }],
    [{ requestHandle: "h", status: "PAUSE", statusMessage: "😀".repeat(1200) }],
    [{ requestHandle: "", status: "UPDATE" }],
    [{ requestHandle: "h", status: "update" }],
    [{ requestHandle: "h", status: "toString" }],
    [{ requestHandle: "h", status: "UPDATE", statusMessage: null }],
    [{ requestHandle: "h", status: "UPDATE", statusMessage: 5 }],
    [{ requestHandle: "h", status: "UPDATE", message: "typo" }],
    [{ requestHandle: "h", status: "UPDATE", statusMessage: "m", extra: 1 }],
    [{ requestHandle: "h", status: "UPDATE", __proto__: "x" }],
    [JSON.parse('{"requestHandle":"h","status":"UPDATE","__proto__":{"a":1}}')],
    [inherited],
    [{ requestHandle: 1, status: "UPDATE" }],
    [{ status: "UPDATE" }],
    [{ requestHandle: "h" }],
    [{}],
    [[]],
    [["h", "UPDATE"]],
    [null],
    ["UPDATE"],
    [42],
  ])("%j", (value) => {
    expect(viaFastPath(value)).toEqual(viaSchema(value));
  });

  it("truncates statusMessage to 1000 code points like the schema", () => {
    const out = parseCallbackBody({ requestHandle: "h", status: "WARNING", statusMessage: long });
    expect([...(out.statusMessage ?? "")].length).toBe(1000);
  });
});
