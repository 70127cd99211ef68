import { EssError } from "@ess/domain";
import { describe, expect, it } from "vitest";
import { filtersToSearch, parseRequestFilters, toRequestQuery } from "./filters.js";

const parse = (qs: string) => parseRequestFilters(new URLSearchParams(qs), 4);
const NOW = Date.parse("2026-11-30T12:00:00Z");

describe("console request filters", () => {
  it("become the q of GET /requests, parsed by the API's own parser", () => {
    const f = parse(
      "state=ERROR&state=WARNING&jobDefinitionId=Job;1&application=O'Brien&submitter=al&from=2026-11-01T00:00&to=2026-11-02T00:00",
    );
    const { q, query } = toRequestQuery(f, NOW);
    expect(q).toBe(
      "state=ERROR,WARNING;jobDefinitionId='Job;1';application='O''Brien';submitter='al';" +
        "submissionTime>=2026-11-01T00:00Z;submissionTime<=2026-11-02T00:00Z",
    );
    expect(query.states).toEqual(["ERROR", "WARNING"]);
    expect(query.text).toEqual({ jobDefinitionId: "Job;1", application: "O'Brien", submitter: "al" });
    expect(query.ranges.submissionTime).toEqual({
      min: Date.parse("2026-11-01T00:00:00Z"),
      max: Date.parse("2026-11-02T00:00:00Z"),
    });
  });

  it("presets replace the chosen states and add their own clauses", () => {
    expect(toRequestQuery(parse("preset=needs-action&state=RUNNING"), NOW).query.states).toEqual([
      "ERROR_MANUAL_RECOVERY",
      "PAUSED",
    ]);
    expect(toRequestQuery(parse("preset=auto-retrying"), NOW).query.states).toEqual(["ERROR_AUTO_RETRY"]);
    expect(toRequestQuery(parse("preset=timed-out"), NOW).query.isTimedOut).toBe(true);
    const stuck = toRequestQuery(parse("preset=stuck-cancelling&minutes=30"), NOW).query;
    expect(stuck.states).toEqual(["CANCELLING"]);
    expect(stuck.ranges.stateChangeTime?.max).toBe(NOW - 30 * 60000);
    expect(toRequestQuery(parse("preset=stuck-cancelling"), NOW).query.ranges.stateChangeTime?.max).toBe(
      NOW - 15 * 60000,
    );
  });

  it("round-trip through the URL (a bookmark gives the same view)", () => {
    const qs = "preset=stuck-cancelling&state=RUNNING&application=A+B&partition=2&minutes=5";
    const f = parse(qs);
    expect(parse(filtersToSearch(f).slice(1))).toEqual(f);
    expect(filtersToSearch(f, "abc")).toContain("cursor=abc");
    expect(filtersToSearch({ states: [] })).toBe("");
  });

  it.each([
    "state=NOPE",
    "partition=4",
    "partition=-1",
    "from=2026-11-01",
    "preset=__proto__",
    "minutes=1.5",
    "id=0",
    `application=${"x".repeat(201)}`,
  ])("refuses %s with a 400 naming it", (qs) => {
    const name = qs.split("=")[0] as string;
    try {
      parse(qs);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(EssError);
      expect((err as EssError).code).toBe("INVALID_BODY");
      expect((err as Error).message).toContain(name);
    }
  });
});
