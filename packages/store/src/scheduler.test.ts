import { describe, expect, it } from "vitest";
import { compareStreamIds, eventJson, previousStreamId } from "./scheduler.js";

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

describe("eventJson", () => {
  it("writes requestId as an exact integer, numbers as numbers, at as ISO time", () => {
    const json = eventJson("1700000000000-1", {
      event: "REQUEST_TIMED_OUT",
      requestId: "9223372036854775807",
      state: "RUNNING",
      execution: "2",
      seq: "5",
      at: "1700000000000",
      isTimedOut: "true",
    });
    expect(json.startsWith('{"requestId":9223372036854775807,')).toBe(true);
    expect(JSON.parse(json)).toMatchObject({
      eventId: "1700000000000-1",
      event: "REQUEST_TIMED_OUT",
      execution: 2,
      seq: 5,
      at: "2023-11-14T22:13:20.000Z",
      isTimedOut: true,
    });
  });
});
