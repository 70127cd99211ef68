import { CloudEvent, ValidationError } from "cloudevents";
import { describe, expect, it } from "vitest";
import { cloudEventJson, cloudEventSchema, eventId, eventSource, eventType, parseEventId } from "./cloudevents.js";

// the fields of stream entries as the Lua scripts write them
const applied = {
  event: "REQUEST_SUCCEEDED",
  requestId: "9007199254740993",
  state: "SUCCEEDED",
  previousState: "RUNNING",
  seq: "3",
  execution: "1",
  at: "1732841234567",
  cause: "PROCESS_SUCCESS",
  eventSeq: "4",
};
const timedOut = {
  event: "REQUEST_TIMED_OUT",
  requestId: "42",
  state: "ERROR",
  previousState: "RUNNING",
  execution: "2",
  at: "1732841234000",
  isTimedOut: "true",
  errorType: "TIMEOUT",
  eventSeq: "7",
};

describe("the CloudEvent of a stream entry", () => {
  it.each([
    ["an applied callback", applied],
    ["a timeout", timedOut],
  ])("%s is a valid CloudEvents 1.0 event (SDK validation and the schema)", (_name, fields) => {
    const json = cloudEventJson(eventSource("ess"), 3, "1732841234567-0", fields);
    const parsed = JSON.parse(json) as Record<string, unknown>;
    // the reference SDK checks the spec's attributes and their types
    const event = new CloudEvent(parsed, true);
    expect(event.validate()).toBe(true);
    expect(cloudEventSchema.safeParse(parsed).success).toBe(true);
    expect(parsed).toMatchObject({
      specversion: "1.0",
      id: "1732841234567-0/3",
      source: "urn:ess:ess",
      subject: fields.requestId,
      datacontenttype: "application/json",
    });
  });

  it("data carries the request id exactly, its event seq and the callback's seq", () => {
    const json = cloudEventJson(eventSource("ess"), 3, "1732841234567-0", applied);
    expect(json).toContain('"data":{"requestId":9007199254740993,"seq":4,');
    const e = JSON.parse(json) as { type: string; time: string; data: Record<string, unknown> };
    expect(e.type).toBe("ess.request.succeeded");
    expect(e.time).toBe("2024-11-29T00:47:14.567Z");
    expect(e.data).toMatchObject({ seq: 4, callbackSeq: 3, event: "REQUEST_SUCCEEDED", execution: 1 });
    const t = JSON.parse(cloudEventJson("urn:ess:x", 0, "1-0", timedOut)) as { data: Record<string, unknown> };
    expect(t.data).toMatchObject({ seq: 7, isTimedOut: true, errorType: "TIMEOUT" });
    expect(t.data.callbackSeq).toBeUndefined();
  });

  it("an event without its required attributes fails the SDK's validation and the schema", () => {
    const parsed = JSON.parse(cloudEventJson("urn:ess:x", 0, "1-0", timedOut)) as Record<string, unknown>;
    for (const drop of ["id", "source", "type", "subject", "time"]) {
      const { [drop]: _gone, ...rest } = parsed;
      // the SDK fills in a missing id and time itself; source and type it cannot
      if (drop === "source" || drop === "type")
        expect(() => new CloudEvent(rest, true).validate()).toThrow(ValidationError);
      expect(cloudEventSchema.safeParse(rest).success).toBe(false);
    }
    expect(cloudEventSchema.safeParse({ ...parsed, specversion: "0.3" }).success).toBe(false);
    expect(cloudEventSchema.safeParse({ ...parsed, data: { ...(parsed.data as object), seq: 0 } }).success).toBe(false);
  });

  it("names: type from the ESS event, id round-trips", () => {
    expect(eventType("REQUEST_ERROR_MANUAL_RECOVERY")).toBe("ess.request.error_manual_recovery");
    expect(parseEventId(eventId("1732841234567-12", 15))).toEqual({ entryId: "1732841234567-12", partition: 15 });
    expect(parseEventId("1732841234567-12")).toBeNull();
  });
});
