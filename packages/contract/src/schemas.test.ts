import { EssError } from "@ess/domain";
import { describe, expect, it, vi } from "vitest";
import { API_ROUTES, parseRequestIdParams } from "./routes.js";
import {
  callbackBatchJobSchema,
  callbackBodySchema,
  callbackJobSchema,
  parseCallbackBody,
  safeParseCallbackBatchJob,
} from "./schemas.js";

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

describe("safeParseCallbackBatchJob (fast path) answers exactly as callbackBatchJobSchema", () => {
  const cb = { v: 1, requestId: "7", seq: 1, execution: 1, status: "UPDATE", acceptedAt: 1 };
  const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
  const batch = (...callbacks: unknown[]) => ({ v: 1, callbacks });
  const inheritedJob = Object.assign(Object.create({ extra: 1 }), cb);
  it.each([
    [batch(cb)],
    [batch({ acceptedAt: 5, status: "SUCCESS", execution: 2, seq: 3, requestId: "9223372036854775807", v: 1 })],
    [batch(cb, { ...cb, seq: 2, message: "step 2 of 4" }, { ...cb, seq: 3, message: "", traceparent })],
    [batch({ ...cb, message: "x".repeat(4000) })],
    [batch({ ...cb, message: "x".repeat(4001) })],
    [batch({ ...cb, message: undefined })],
    [batch({ ...cb, traceparent: undefined })],
    [batch({ ...cb, traceparent: "00-xyz" })],
    [batch({ ...cb, extra: 1 })],
    [batch(inheritedJob)],
    [batch({ ...cb, v: 2 })],
    [batch({ ...cb, requestId: "07" })],
    [batch({ ...cb, requestId: 7 })],
    [batch({ ...cb, seq: 0 })],
    [batch({ ...cb, seq: 1.5 })],
    [batch({ ...cb, execution: "1" })],
    [batch({ ...cb, status: "DONE" })],
    [batch({ ...cb, acceptedAt: -1 })],
    [batch({ ...cb, acceptedAt: 2 ** 53 })],
    [batch(cb, null)],
    [batch(cb, [cb])],
    [batch()],
    [{ v: 1, callbacks: cb }],
    [{ ...batch(cb), extra: 1 }],
    [{ ...batch(cb), v: 2 }],
    [{ callbacks: [cb] }],
    [[cb]],
    [null],
    ["batch"],
  ])("%j", (value) => {
    const fast = safeParseCallbackBatchJob(value);
    const schema = callbackBatchJobSchema.safeParse(value);
    expect(fast.success).toBe(schema.success);
    // the same data, key order included (the apply script gets each callback as JSON)
    if (fast.success) expect(JSON.stringify(fast.data)).toBe(JSON.stringify(schema.data));
    else expect(fast.error?.issues).toEqual(schema.error?.issues);
  });

  it("checks a well-formed batch without the schema", () => {
    const spy = vi.spyOn(callbackBatchJobSchema, "safeParse");
    try {
      expect(safeParseCallbackBatchJob(batch(cb, { ...cb, seq: 2, message: "m", traceparent })).success).toBe(true);
      expect(spy).not.toHaveBeenCalled();
      expect(safeParseCallbackBatchJob(batch({ ...cb, seq: 0 })).success).toBe(false);
      expect(spy).toHaveBeenCalledTimes(1);
    } finally {
      spy.mockRestore();
    }
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

describe("parseRequestIdParams (fast path) answers as the {requestId} params schema", () => {
  const schema = API_ROUTES.postExecutionStatus.request.params;
  it.each([
    "1",
    "42",
    "007",
    "9223372036854775807",
    "9223372036854775808",
    "0",
    "000",
    "",
    "-1",
    "1.5",
    "12x",
    " 1",
    "1".repeat(65),
  ])("%j", (raw) => {
    const fast = parseRequestIdParams({ requestId: raw });
    const r = schema.safeParse({ requestId: raw });
    // the fast path vouches only for what the schema accepts, and then returns what it returns
    if (fast !== undefined) expect(fast).toEqual(r.data);
    else expect(r.success).toBe(false);
  });
});
