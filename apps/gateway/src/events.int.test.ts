import { cloudEventSchema, simpleExceptionDetailSchema } from "@ess/contract";
import { Keys, RequestStore } from "@ess/store";
import { readSse } from "@ess/testing";
import { newRequestId, uniquePrefix } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { createApp } from "./app.js";
import { useGatewayTestContext } from "./test-context.js";

const ctx = await useGatewayTestContext({ partitions: 4 });
const app = createApp({
  ...ctx.deps,
  scheduler: { forceCancelQuietMs: 0, ssePollMs: 20 },
});
const R = "/ess/rest/scheduler/v1/requests";

const post = (path: string) => app.request(path, { method: "POST" });
const register = (id: string) => post(`/gateway/v1/requests/${id}/executions`);
const events = (query = "", headers: Record<string, string> = {}) =>
  app.request(`/gateway/v1/events${query}`, { headers });

/** Ids on distinct partitions, so unfiltered streams interleave partitions. */
function idsOnPartitions(n: number): string[] {
  const out: string[] = [];
  const seen = new Set<number>();
  while (out.length < n) {
    const id = newRequestId();
    if (!seen.has(ctx.keys.partition(id))) {
      seen.add(ctx.keys.partition(id));
      out.push(id);
    }
  }
  return out;
}

describe("GET /gateway/v1/events (Server-Sent Events)", () => {
  it("streams one request's state changes with the stream entry ids as SSE ids", async () => {
    const id = newRequestId();
    const res = await events(`?requestId=${id}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const other = newRequestId();
    await register(other);
    await register(id);
    await post(`${R}/${id}/cancel`);
    await post(`${R}/${id}/forceCancel`);
    const got = await readSse(res, (e) => e.length >= 3);
    expect(got.map((e) => e.event)).toEqual(["REQUEST_RUNNING", "REQUEST_CANCELLING", "REQUEST_CANCELLED"]);
    const stream = await ctx.redis.xrange(ctx.keys.events(ctx.keys.partition(id)), "-", "+");
    const mine = stream.filter(([, f]) => f[f.indexOf("requestId") + 1] === id).map(([sid]) => sid);
    expect(got.map((e) => e.id)).toEqual(mine);
    // each data is the CloudEvent of the state change, as webhooks carry it
    const ces = got.map((e) => cloudEventSchema.parse(JSON.parse(e.data)));
    expect(ces.map((e) => e.data.seq)).toEqual([1, 2, 3]);
    const p = ctx.keys.partition(id);
    expect(ces[2]).toMatchObject({
      specversion: "1.0",
      id: `${mine[2]}/${p}`,
      source: `urn:ess:${ctx.prefix}`,
      type: "ess.request.cancelled",
      subject: id,
      data: {
        requestId: Number(id),
        event: "REQUEST_CANCELLED",
        state: "CANCELLED",
        previousState: "CANCELLING",
      },
    });
    expect(ces[2]?.data.at).toMatch(/^\d{4}-\d\d-\d\dT.*Z$/);
  });

  it("resumes after Last-Event-ID without loss or repeat (one request)", async () => {
    const id = newRequestId();
    const first = await events(`?requestId=${id}`);
    await register(id);
    await post(`${R}/${id}/cancel`);
    const seen = await readSse(first, (e) => e.length >= 1);
    // disconnected after the first event; more happens meanwhile
    await post(`${R}/${id}/forceCancel`);
    const again = await events(`?requestId=${id}`, { "last-event-id": seen[0]?.id ?? "" });
    const rest = await readSse(again, (e) => e.length >= 2);
    expect(rest.map((e) => e.event)).toEqual(["REQUEST_CANCELLING", "REQUEST_CANCELLED"]);
  });

  it("resumes an unfiltered stream over all partitions from an id of the form <entryId>/<partition>", async () => {
    const ids = idsOnPartitions(4);
    const start = Date.now() - 1;
    for (const id of ids) await register(id);
    for (const id of ids) await post(`${R}/${id}/cancel`);
    const all = await readSse(await events("", { "last-event-id": `${start}-0` }), (e) => e.length >= 8);
    const ours = all.filter((e) => ids.includes((JSON.parse(e.data) as { subject: string }).subject));
    expect(ours).toHaveLength(8);
    for (const e of all) expect(e.id).toMatch(/^\d+-\d+\/\d+$/);
    // resume after each position: exactly the rest follows
    for (const k of [0, 3, 5]) {
      const cut = all[k]?.id as string;
      const rest = await readSse(await events("", { "last-event-id": cut }), (e) => e.length >= all.length - k - 1);
      expect(rest.map((e) => e.id)).toEqual(all.slice(k + 1).map((e) => e.id));
    }
  });

  it("delivers events written while the client is connected, in stream order per request", async () => {
    const id = newRequestId();
    const res = await events(`?requestId=${id}`);
    await register(id);
    await register(id);
    await register(id);
    const got = await readSse(res, (e) => e.length >= 3);
    expect(got.map((e) => (JSON.parse(e.data) as { data: { execution: number } }).data.execution)).toEqual([1, 2, 3]);
  });

  it("400 for a malformed Last-Event-ID or requestId, 405 for POST", async () => {
    for (const [res, code] of [
      [await events("", { "last-event-id": "yesterday" }), "ESS-40009"],
      [await events("?requestId=abc"), "ESS-40001"],
      [await app.request("/gateway/v1/events", { method: "POST" }), "ESS-40501"],
    ] as const) {
      expect(res.status).toBeGreaterThanOrEqual(400);
      expect(simpleExceptionDetailSchema.parse(await res.json()).errorCode).toBe(code);
    }
  });

  describe("ordering across partitions (stream ids written by hand)", () => {
    /** An app over a fresh prefix, so the streams hold only what the test writes. */
    function freshApp() {
      const keys = new Keys(uniquePrefix(), 4);
      const app2 = createApp({
        ...ctx.deps,
        store: new RequestStore(ctx.redis, keys),
        scheduler: { forceCancelQuietMs: 0, ssePollMs: 20 },
      });
      const add = (p: number, id: string) =>
        ctx.redis.xadd(keys.events(p), id, "event", "REQUEST_RUNNING", "requestId", "1", "state", "RUNNING");
      const read = async (lastEventId: string, n: number) =>
        (
          await readSse(
            await app2.request("/gateway/v1/events", { headers: { "last-event-id": lastEventId } }),
            (e) => e.length >= n,
          )
        ).map((e) => e.id);
      return { add, read };
    }

    it("the same entry id on several partitions: <id>/<p> resumes after exactly that one", async () => {
      const { add, read } = freshApp();
      for (const p of [0, 1, 2, 3]) await add(p, "5000-0");
      await add(2, "5000-1");
      await add(0, "5001-0");
      expect(await read("4999-0", 6)).toEqual(["5000-0/0", "5000-0/1", "5000-0/2", "5000-0/3", "5000-1/2", "5001-0/0"]);
      expect(await read("5000-0/1", 4)).toEqual(["5000-0/2", "5000-0/3", "5000-1/2", "5001-0/0"]);
      expect(await read("5000-0", 2)).toEqual(["5000-1/2", "5001-0/0"]);
    });

    it("a partition with more than one read's worth is not overtaken by a later entry of another", async () => {
      const { add, read } = freshApp();
      // partition 0: 600 entries at ms 10001..10600; partition 1: one in the middle, one after
      for (let ms = 10001; ms <= 10600; ms++) await add(0, `${ms}-0`);
      await add(1, "10250-0");
      await add(1, "10700-0");
      const ids = await read("0-0", 602);
      expect(ids.slice(249, 252)).toEqual(["10250-0/0", "10250-0/1", "10251-0/0"]);
      expect(ids.slice(-2)).toEqual(["10600-0/0", "10700-0/1"]);
    });
  });
});
