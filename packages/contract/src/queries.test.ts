import { describe, expect, it } from "vitest";
import { indexRange, parseFieldSelection, parseRequestQuery } from "./queries.js";

describe("parseRequestQuery (ESS q subset)", () => {
  it("reads states, equality fields, isTimedOut and time ranges, all ANDed", () => {
    const q = parseRequestQuery(
      "state=RUNNING,CANCELLING; jobDefinitionId='JobDefinition://a;b'; submitter=o''brien;isTimedOut=true;" +
        "submissionTime>=2026-11-30T08:00:00Z;submissionTime<1764489600000",
      undefined,
    );
    expect(q).toEqual({
      states: ["RUNNING", "CANCELLING"],
      text: { jobDefinitionId: "JobDefinition://a;b", submitter: "o''brien" },
      isTimedOut: true,
      ranges: { submissionTime: { min: Date.parse("2026-11-30T08:00:00Z"), max: 1764489600000 - 1 } },
      orderBy: { field: "stateChangeTime", desc: true },
    });
  });

  it("intersects two state clauses and orders by submission without a state", () => {
    expect(parseRequestQuery("state=RUNNING,ERROR;state=ERROR", undefined).states).toEqual(["ERROR"]);
    expect(parseRequestQuery(undefined, undefined).orderBy).toEqual({ field: "submissionTime", desc: true });
    expect(parseRequestQuery("state=ERROR", "submissionTime:asc").orderBy).toEqual({
      field: "submissionTime",
      desc: false,
    });
  });

  it("scans completedTime through the state index when every state is terminal", () => {
    const q = parseRequestQuery("state=ERROR,SUCCEEDED;completedTime>=1000;completedTime<=2000", undefined);
    expect(indexRange(q)).toEqual({ min: 1000, max: 2000 });
    const mixed = parseRequestQuery("state=ERROR,RUNNING;completedTime>=1000", undefined);
    expect(indexRange(mixed)).toEqual({ min: 0, max: Number.MAX_SAFE_INTEGER });
  });

  it.each([
    ["state=FOO", /'FOO' is not a state/],
    ["state<RUNNING", /state takes '='/],
    ["colour=red", /'colour' cannot be queried/],
    ["submitter>=a", /submitter takes '=' only/],
    ["submitter=a;submitter=b", /submitter is given twice/],
    ["isTimedOut=yes", /isTimedOut takes/],
    ["completedTime>=2026-11-30", /completedTime must be an ISO 8601 time/],
    ["jobDefinitionId='open", /not closed/],
    ["state", /is not 'field=value'/],
    ["state=", /state has no value/],
  ])("refuses %s naming the problem", (q, detail) => {
    expect(() => parseRequestQuery(q, undefined)).toThrow(detail);
  });

  it("refuses an orderBy outside the subset, and stateChangeTime without a state", () => {
    expect(() => parseRequestQuery(undefined, "priority")).toThrow(/orderBy must be one of/);
    expect(() => parseRequestQuery(undefined, "stateChangeTime")).toThrow(/needs a state filter/);
  });
});

describe("parseFieldSelection", () => {
  it("keeps the named fields, or all but the excluded ones; null without either", () => {
    expect([...(parseFieldSelection("state", undefined) ?? [])]).toEqual(["state"]);
    const sel = parseFieldSelection(undefined, "history,links");
    expect(sel?.has("state")).toBe(true);
    expect(sel?.has("history")).toBe(false);
    expect(parseFieldSelection(undefined, undefined)).toBeNull();
  });

  it("refuses unknown names and both parameters", () => {
    expect(() => parseFieldSelection("state,handle", undefined)).toThrow(/'handle' is not a RequestDetails field/);
    expect(() => parseFieldSelection("state", "links")).toThrow(/not both/);
    expect(() => parseFieldSelection(",", undefined)).toThrow(/names no field/);
  });
});
