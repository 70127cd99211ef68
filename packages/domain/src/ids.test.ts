import { describe, expect, it } from "vitest";
import { parseRequestId, partitionOf } from "./ids.js";
import { STATUS_MESSAGE_MAX, truncateMessage } from "./statuses.js";

describe("parseRequestId", () => {
  it.each([
    ["1", "1"],
    ["007", "7"],
    ["9223372036854775807", "9223372036854775807"],
    ["09223372036854775807", "9223372036854775807"],
    ["9007199254740993", "9007199254740993"],
  ])("accepts %s as %s", (raw, id) => {
    expect(parseRequestId(raw)).toBe(id);
  });

  it.each(["", "0", "000", "-1", "+1", "1.5", "1e3", "abc", " 1", "9223372036854775808", "99999999999999999999"])(
    "rejects %j",
    (raw) => {
      expect(parseRequestId(raw)).toBeNull();
    },
  );
});

describe("partitionOf", () => {
  it("is stable and within range", () => {
    expect(partitionOf("42", 16)).toBe(partitionOf("42", 16));
    for (let i = 1; i < 500; i++) {
      const p = partitionOf(String(i), 16);
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(16);
    }
  });
});

describe("truncateMessage", () => {
  it("keeps messages up to the limit", () => {
    const m = "x".repeat(STATUS_MESSAGE_MAX);
    expect(truncateMessage(m)).toBe(m);
  });
  it("truncates to 1000 code points, never splitting a surrogate pair", () => {
    const m = "😀".repeat(1200);
    const t = truncateMessage(m);
    expect([...t].length).toBe(1000);
    expect(t).toBe("😀".repeat(1000));
  });
});
