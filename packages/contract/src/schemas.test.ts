import { EssError } from "@ess/domain";
import { describe, expect, it } from "vitest";
import { callbackBodySchema, callbackJobSchema, parseCallbackBody } from "./schemas.js";

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

describe("the job's traceparent (contract)", () => {
  const job = { v: 1, requestId: "7", seq: 1, execution: 1, status: "SUCCESS", acceptedAt: 1 };

  it("is optional, and a W3C traceparent when present", () => {
    expect(callbackJobSchema.safeParse(job).success).toBe(true);
    const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    expect(callbackJobSchema.parse({ ...job, traceparent }).traceparent).toBe(traceparent);
  });

  it.each([
    "",
    "00-xyz",
    "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
  ])("rejects %j", (traceparent) => {
    expect(callbackJobSchema.safeParse({ ...job, traceparent }).success).toBe(false);
  });
});
