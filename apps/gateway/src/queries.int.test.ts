import { simpleExceptionDetailSchema } from "@ess/contract";
import { SchedulerStore } from "@ess/store";
import { newRequestId } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { useGatewayTestContext } from "./test-context.js";

const ctx = await useGatewayTestContext({ partitions: 4 });
const JOB = "JobDefinition://oracle/apps/ess/custom/Nightly";

function register(id: string, body: unknown = {}) {
  return ctx.app.request(`/gateway/v1/requests/${id}/executions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}
const get = async (path: string) => {
  const res = await ctx.app.request(path);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
async function problem(path: string, detail: RegExp) {
  const res = await ctx.app.request(path);
  expect(res.status).toBe(400);
  const body = simpleExceptionDetailSchema.parse(await res.json());
  expect(body.detail).toMatch(detail);
}

const METADATA = {
  jobDefinitionId: JOB,
  application: "EssDemoApp",
  submitter: "alice",
  description: "nightly load",
  priority: 2,
  requestType: "SINGLETON",
  requestParameters: [
    { name: "batchSize", paramType: "INTEGER", value: "500" },
    { name: "dryRun", paramType: "BOOLEAN", value: "false", scope: "job" },
  ],
};

describe("request metadata", () => {
  it("is taken at registration and read back under ESS's names, with submissionTime", async () => {
    const id = newRequestId();
    expect((await register(id, { ...METADATA, maxRetries: 1 })).status).toBe(201);
    const { body } = await get(`/ess/rest/scheduler/v1/requests/${id}`);
    expect(body).toMatchObject({ ...METADATA, isHoldable: false, schedule: null, state: "RUNNING" });
    expect(body.submissionTime).toBe(body.processStartTime);
    expect(body.stateChangeTime).toBe(body.submissionTime);
    // a re-registration keeps the first submission time
    await register(id);
    const again = await get(`/ess/rest/scheduler/v1/requests/${id}`);
    expect(again.body.submissionTime).toBe(body.submissionTime);
    expect(again.body.jobDefinitionId).toBe(JOB);
  });

  it.each([
    [{ requestParameters: [{ name: "n", paramType: "LONG", value: "ten" }] }, /requestParameters\.0\.value.*LONG/],
    [{ requestParameters: [{ name: "n", paramType: "FLOAT", value: "1" }] }, /requestParameters\.0\.paramType/],
    [{ jobDefinitionId: "a\u0001b" }, /jobDefinitionId.*control/],
    [{ description: "x".repeat(1001) }, /description/],
    [{ priority: 1.5 }, /priority/],
    [
      { requestParameters: Array.from({ length: 51 }, (_, i) => ({ name: `p${i}`, paramType: "STRING", value: "" })) },
      /requestParameters/,
    ],
  ])("refuses bad metadata %# with a 400 naming the field", async (body, detail) => {
    const res = await register(newRequestId(), body);
    expect(res.status).toBe(400);
    expect(simpleExceptionDetailSchema.parse(await res.json()).detail).toMatch(detail);
  });
});

describe("fields and excludeFields", () => {
  it("fields=state answers the state alone; excludeFields drops fields", async () => {
    const id = newRequestId();
    await register(id, METADATA);
    expect((await get(`/ess/rest/scheduler/v1/requests/${id}?fields=state`)).body).toEqual({ state: "RUNNING" });
    const res = await ctx.app.request(`/ess/rest/scheduler/v1/requests/${id}?fields=requestId,state`);
    expect(await res.text()).toBe(`{"requestId":${id},"state":"RUNNING"}`);
    const { body } = await get(`/ess/rest/scheduler/v1/requests/${id}?excludeFields=history,links,requestParameters`);
    expect(body).toMatchObject({ requestId: Number(id), jobDefinitionId: JOB });
    expect(Object.keys(body)).not.toContain("history");
    expect(Object.keys(body)).not.toContain("links");
  });

  it("answers 400 naming an unknown field, or both parameters at once", async () => {
    const id = newRequestId();
    await register(id);
    await problem(
      `/ess/rest/scheduler/v1/requests/${id}?fields=state,colour`,
      /'colour' is not a RequestDetails field/,
    );
    await problem(`/ess/rest/scheduler/v1/requests/${id}?fields=state&excludeFields=links`, /not both/);
  });
});

describe("GET /ess/rest/scheduler/v1/requests", () => {
  it("finds requests by state, job definition and time, pages with a next link, items are RequestDetails", async () => {
    const scheduler = new SchedulerStore(ctx.store);
    const job = `${JOB}/paged`;
    const ids = Array.from({ length: 9 }, () => newRequestId());
    for (const id of ids) {
      await register(id, { jobDefinitionId: job, submitter: "bob" });
      // submission times are in ms: one ms apart at least, so that each request has its own
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    const cancelling = ids.filter((_, i) => i % 2 === 0);
    for (const id of cancelling) await scheduler.cancel(id);

    const seen: string[] = [];
    let url: string | null = `/ess/rest/scheduler/v1/requests?q=state=CANCELLING;jobDefinitionId='${job}'&limit=2`;
    for (let i = 0; i < 10 && url; i++) {
      const { status, body } = await get(url);
      expect(status).toBe(200);
      const items = body.items as Record<string, unknown>[];
      expect(items.length).toBeLessThanOrEqual(2);
      for (const it of items) {
        expect(it).toMatchObject({
          state: "CANCELLING",
          jobDefinitionId: job,
          submitter: "bob",
          isForceCancelAllowed: true,
        });
        expect(it).not.toHaveProperty("history");
        seen.push(String(it.requestId));
      }
      const next = (body.links as { rel: string; href: string }[]).find((l) => l.rel === "next");
      expect(body.hasMore).toBe(next !== undefined);
      url = next ? next.href : null;
    }
    // newest state change first by default
    expect(seen).toEqual([...cancelling].reverse());

    const asc = await get(
      `/ess/rest/scheduler/v1/requests?q=jobDefinitionId='${job}'&orderBy=submissionTime:asc&fields=requestId&limit=100`,
    );
    expect((asc.body.items as { requestId: number }[]).map((r) => String(r.requestId))).toEqual(ids);
    const t = (await get(`/ess/rest/scheduler/v1/requests/${ids[4]}?fields=submissionTime`)).body
      .submissionTime as string;
    const later = await get(
      `/ess/rest/scheduler/v1/requests?q=jobDefinitionId='${job}';submissionTime>=${t}&orderBy=submissionTime:asc&fields=requestId`,
    );
    expect((later.body.items as { requestId: number }[]).map((r) => String(r.requestId))).toEqual(ids.slice(4));
    const running = await get(`/ess/rest/scheduler/v1/requests?q=state=RUNNING;submitter=bob;jobDefinitionId='${job}'`);
    expect((running.body.items as unknown[]).length).toBe(ids.length - cancelling.length);
  });

  it.each([
    ["q=colour=red", /'colour' cannot be queried/],
    ["q=state=RUNING", /'RUNING' is not a state/],
    ["q=state>RUNNING", /state takes '='/],
    ["q=submissionTime>=yesterday", /submissionTime must be an ISO 8601 time/],
    ["q=errorType>SYSTEM", /errorType takes '=' only/],
    ["orderBy=priority", /orderBy must be one of submissionTime, stateChangeTime/],
    ["orderBy=stateChangeTime", /needs a state filter/],
    ["limit=0", /limit/],
    ["limit=501", /limit/],
    ["cursor=abc", /cursor is not one this server issued/],
    ["fields=history", /history is only on GET/],
    ["colour=red", /unknown property 'colour'/],
  ])("answers 400 naming the problem: %s", async (query, detail) => {
    await problem(`/ess/rest/scheduler/v1/requests?${query}`, detail);
  });

  it("answers 405 to other methods", async () => {
    const res = await ctx.app.request("/ess/rest/scheduler/v1/requests", { method: "POST" });
    expect(res.status).toBe(405);
  });
});
