import "@ess/testing/provided";
import { eventually, type RunningProcess, startApp } from "@ess/testing";
import { uniquePrefix } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { callback, details, registerRequest } from "../support/http.js";

// register → callbacks → GET, through a real gateway process and a real worker process
let gateway: RunningProcess;
let worker: RunningProcess;
let base: string;

beforeAll(async () => {
  const env = { REDIS_URL: inject("redisUrl"), KEY_PREFIX: uniquePrefix(), PARTITIONS: "4" };
  [gateway, worker] = await Promise.all([startApp("gateway", env), startApp("worker", env)]);
  base = gateway.url;
});

afterAll(async () => {
  const codes = await Promise.all([gateway?.stop(), worker?.stop()]);
  expect(codes).toEqual([0, 0]);
});

let next = 5000;
const newId = () => String(++next);

async function settle(id: string, state: string) {
  return eventually(
    async () => {
      const d = await details(base, id);
      return d.state === state && d;
    },
    15000,
    `request ${id} to reach ${state}`,
  );
}

describe("the callback path end to end", () => {
  const rows: [string, string, Record<string, unknown>][] = [
    ["SUCCESS", "SUCCEEDED", { cause: "PROCESS_SUCCESS" }],
    ["PAUSE", "PAUSED", { pausedState: "msg" }],
    ["WARNING", "WARNING", { errorWarningMessage: "msg" }],
    ["ERROR", "ERROR", { errorType: "SYSTEM", errorWarningMessage: "msg" }],
    ["BUSINESS_ERROR", "ERROR", { errorType: "BUSINESS", errorWarningMessage: "msg" }],
    ["CANCEL", "CANCELLED", { cause: "PROCESS_CANCEL" }],
    ["SUSPEND", "ERROR_MANUAL_RECOVERY", { cause: "PROCESS_SUSPEND" }],
  ];

  it.each(rows)("UPDATE ×3 then %s → %s with history in order", async (status, state, fields) => {
    const id = newId();
    const { requestHandle } = await registerRequest(base, id);
    for (let i = 0; i < 3; i++) expect(await callback(base, id, requestHandle, "UPDATE", `${i}`)).toBe(200);
    expect(await callback(base, id, requestHandle, status, "msg")).toBe(200);
    const d = await settle(id, state);
    expect(d).toMatchObject(fields);
    expect(d.lastCheckInTime).toEqual(expect.any(String));
    const applied = d.history.filter((h) => h.outcome !== "registered").reverse();
    expect(applied.map((h) => [h.seq, h.status, h.outcome])).toEqual([
      [1, "UPDATE", "applied"],
      [2, "UPDATE", "applied"],
      [3, "UPDATE", "applied"],
      [4, status, "applied"],
    ]);
    expect(applied[3]).toMatchObject({ from: "RUNNING", to: state });
  });

  it("ERROR with a retry left → ERROR_AUTO_RETRY; re-registered, the next ERROR is final", async () => {
    const id = newId();
    const first = await registerRequest(base, id, { maxRetries: 1 });
    expect(await callback(base, id, first.requestHandle, "ERROR", "first")).toBe(200);
    await settle(id, "ERROR_AUTO_RETRY");
    expect(await callback(base, id, first.requestHandle, "UPDATE")).toBe(403);
    const second = await registerRequest(base, id);
    expect(second.execution).toBe(2);
    expect(await callback(base, id, first.requestHandle, "ERROR")).toBe(403);
    expect(await callback(base, id, second.requestHandle, "ERROR", "second")).toBe(200);
    const d = await settle(id, "ERROR");
    expect(d).toMatchObject({ retriedCount: 1, errorType: "SYSTEM", errorWarningMessage: "second", execution: 2 });
  });

  it("a callback that loses the race with the closing one is ignored (or refused); a repeat of the closing one answers 200", async () => {
    const id = newId();
    const { requestHandle } = await registerRequest(base, id);
    expect(await callback(base, id, requestHandle, "SUCCESS")).toBe(200);
    const late = await callback(base, id, requestHandle, "ERROR", "too late");
    const d = await settle(id, "SUCCEEDED");
    if (late === 200) {
      // admitted while the hash still said RUNNING: applied after SUCCESS, so recorded as ignored
      const entry = await eventually(async () => (await details(base, id)).history.find((h) => h.seq === 2));
      expect(entry).toMatchObject({ outcome: "ignored", reason: "request is SUCCEEDED" });
    } else {
      expect(late).toBe(403);
    }
    expect(d.errorWarningMessage).toBeNull();
    expect(await callback(base, id, requestHandle, "SUCCESS")).toBe(200);
    expect(await callback(base, id, requestHandle, "ERROR")).toBe(403);
  });

  it("PAUSE then resume hands back the paused state", async () => {
    const id = newId();
    const { requestHandle } = await registerRequest(base, id);
    expect(await callback(base, id, requestHandle, "PAUSE", "cursor=17")).toBe(200);
    await settle(id, "PAUSED");
    const resumed = await registerRequest(base, id, { resumed: true });
    expect(resumed).toMatchObject({ execution: 2, pausedState: "cursor=17" });
    expect(await callback(base, id, resumed.requestHandle, "SUCCESS")).toBe(200);
    await settle(id, "SUCCEEDED");
  });
});
