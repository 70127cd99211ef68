import { describe, expect, it } from "vitest";
import { compareStreamIds, previousStreamId } from "./scheduler.js";

describe("stream ids", () => {
  it("compare numerically, not as strings", () => {
    expect(compareStreamIds("9-0", "10-0")).toBe(-1);
    expect(compareStreamIds("10-2", "10-10")).toBe(-1);
    expect(compareStreamIds("10-10", "10-10")).toBe(0);
    expect(compareStreamIds("11-0", "10-99")).toBe(1);
  });

  it("previousStreamId is the greatest id below", () => {
    expect(previousStreamId("10-3")).toBe("10-2");
    expect(previousStreamId("10-0")).toBe("9-18446744073709551615");
    expect(compareStreamIds(previousStreamId("10-0"), "10-0")).toBe(-1);
    expect(previousStreamId("0-0")).toBe("0-0");
  });
});
