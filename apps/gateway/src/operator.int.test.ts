import { simpleExceptionDetailSchema } from "@ess/contract";
import { type AuditEntry, AuditLog, type BulkAction, type DeadLetter, Keys } from "@ess/store";
import { failedJob } from "@ess/testing";
import { newRequestId } from "@ess/testing/context";
import { describe, expect, it } from "vitest";
import { useGatewayTestContext } from "./test-context.js";

const TOKENS = {
  viewer: "tok-viewer-0123456789",
  operator: "tok-operator-0123456789",
  scheduler: "tok-scheduler-0123456789",
  admin: "tok-admin-0123456789",
  job: "tok-job-0123456789",
};
const ctx = await useGatewayTestContext({
  partitions: 4,
  env: {
    AUTH_TOKENS: [
      `vera:viewer:${TOKENS.viewer}`,
      `otto:operator:${TOKENS.operator}`,
      `sam:scheduler:${TOKENS.scheduler}`,
      `ada:admin:${TOKENS.admin}`,
      `jo:job:${TOKENS.job}`,
    ].join(","),
    FORCE_CANCEL_QUIET_MS: String(5 * 60000),
  },
});
type Who = keyof typeof TOKENS;

const auth = (who: Who) => ({ authorization: `Bearer ${TOKENS[who]}` });
const get = (who: Who, path: string, app = ctx.adminApp) => app.request(path, { headers: auth(who) });
const post = (who: Who, path: string, body?: unknown, app = ctx.adminApp) =>
  app.request(path, {
    method: "POST",
    headers: { ...auth(who), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

async function problem(res: Response, status: number) {
  expect(res.status).toBe(status);
  return simpleExceptionDetailSchema.parse(await res.json());
}

/** Registers a request over the scheduler API; optionally moves it to `state` (as the scheduler tests do). */
async function request(state?: string): Promise<string> {
  const id = newRequestId();
  const res = await ctx.app.request(`/gateway/v1/requests/${id}/executions`, {
    method: "POST",
    headers: auth("scheduler"),
  });
  expect(res.status).toBe(201);
  if (state) await ctx.redis.hset(ctx.keys.request(ctx.keys.partition(id), id), "state", state);
  return id;
}

async function history(id: string): Promise<Record<string, unknown>[]> {
  const res = await ctx.app.request(`/ess/rest/scheduler/v1/requests/${id}`, { headers: auth("scheduler") });
  expect(res.status).toBe(200);
  return ((await res.json()) as { history: Record<string, unknown>[] }).history;
}

async function audit(query = ""): Promise<AuditEntry[]> {
  const res = await get("viewer", `/admin/audit${query}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { items: AuditEntry[] }).items;
}

let deadSeq = 0;
/** Records `n` dead letters of a request (dead-lettered at `at`, 1 ms apart). */
async function deadLetters(requestId: string, n: number, at = Date.now() - 60000): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  for (let i = 0; i < n; i++) {
    deadSeq++;
    out.push(
      await ctx.deadLetters.record(ctx.keys.partition(requestId), failedJob(requestId, deadSeq, "ERROR"), at + i),
    );
  }
  return out;
}

describe("console roles on the admin listener", () => {
  it("viewers read, and are refused every action (403) before it reaches the service", async () => {
    const id = await request();
    for (const path of ["/admin/audit", "/admin/actions", `/admin/requests/${id}/actions`]) {
      expect((await get("viewer", path)).status, path).toBe(200);
    }
    await problem(await post("viewer", `/admin/requests/${id}/actions/cancel`, { reason: "r" }), 403);
    await problem(await post("viewer", "/admin/dead-letters/0.x/purge", { reason: "r" }), 403);
    await problem(await post("viewer", "/admin/dead-letters/0.x/replay", { reason: "r" }), 403);
    expect(await ctx.store.state(id)).toBe("RUNNING");
  });

  it("a viewer's request to create a bulk action is refused by the service, and audited", async () => {
    await problem(await post("viewer", "/admin/actions", { kind: "replay", filter: {} }), 403);
    const [last] = await audit("?actor=vera");
    expect(last).toMatchObject({ actor: "vera", role: "viewer", action: "bulk.create.replay", outcome: "refused" });
  });

  it("job credentials and anonymous callers do not reach the console API", async () => {
    await problem(await get("job", "/admin/audit"), 403);
    expect((await ctx.adminApp.request("/admin/audit")).status).toBe(401);
  });

  it("an operator takes single actions but is refused purges and bulk actions (403, audited)", async () => {
    const id = await request();
    const res = await post("operator", `/admin/requests/${id}/actions/cancel`, { reason: "job hangs" });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ requestId: id, action: "cancel", from: "RUNNING", to: "CANCELLING" });
    const [dl] = await deadLetters(id, 1);
    await problem(await post("operator", `/admin/dead-letters/${dl?.id}/purge`, { reason: "junk" }), 403);
    expect(await ctx.deadLetters.get(dl?.id ?? "")).not.toBeNull();
    await problem(await post("operator", "/admin/actions", { kind: "purge", filter: { requestId: id } }), 403);
    const mine = await audit("?actor=otto");
    expect(mine.map((e) => [e.action, e.outcome])).toEqual([
      ["bulk.create.purge", "refused"],
      ["deadLetter.purge", "refused"],
      ["request.cancel", "succeeded"],
    ]);
    // an operator's single replay is allowed
    const replay = await post("operator", `/admin/dead-letters/${dl?.id}/replay`, { reason: "fixed upstream" });
    expect(await replay.json()).toMatchObject({ id: dl?.id, result: "replayed" });
  });

  it("a scheduler credential acts as an operator in the console", async () => {
    const id = await request();
    const res = await post("scheduler", `/admin/requests/${id}/actions/cancel`, { reason: "stop it" });
    expect(res.status).toBe(200);
    const [last] = await audit(`?target=request/${id}`);
    expect(last).toMatchObject({ actor: "sam", role: "operator", outcome: "succeeded" });
  });

  it("an admin purges one dead letter", async () => {
    const [dl] = await deadLetters(newRequestId(), 1);
    const res = await post("admin", `/admin/dead-letters/${dl?.id}/purge`, { reason: "poison message" });
    expect(await res.json()).toMatchObject({ id: dl?.id, result: "purged" });
    expect(await ctx.deadLetters.get(dl?.id ?? "")).toBeNull();
    await problem(await post("admin", `/admin/dead-letters/${dl?.id}/purge`, { reason: "again" }), 404);
  });
});

describe("actions on requests", () => {
  it("requires a reason (400, nothing done)", async () => {
    const id = await request();
    for (const body of [{}, { reason: "" }, { reason: "   " }, { reason: "x".repeat(1001) }]) {
      await problem(await post("operator", `/admin/requests/${id}/actions/cancel`, body), 400);
    }
    // no body at all: the body is required JSON
    await problem(await post("operator", `/admin/requests/${id}/actions/cancel`), 415);
    await problem(await post("operator", `/admin/requests/${id}/actions/nope`, { reason: "r" }), 400);
    await problem(await post("operator", "/admin/requests/0/actions/cancel", { reason: "r" }), 400);
    expect(await ctx.store.state(id)).toBe("RUNNING");
  });

  it("offers only the actions valid in the current state", async () => {
    const actions = async (id: string) =>
      ((await (await get("viewer", `/admin/requests/${id}/actions`)).json()) as { actions: string[] }).actions;
    expect(await actions(await request())).toEqual(["cancel"]);
    expect(await actions(await request("ERROR_MANUAL_RECOVERY"))).toEqual(["rearm"]);
    expect(await actions(await request("PAUSED"))).toEqual(["rearm"]);
    expect(await actions(await request("SUCCEEDED"))).toEqual([]);
    const cancelling = await request();
    await post("operator", `/admin/requests/${cancelling}/actions/cancel`, { reason: "r" });
    // forceCancel only once the quiet period has passed; the states say when
    expect(await actions(cancelling)).toEqual([]);
    const early = (await (await get("viewer", `/admin/requests/${cancelling}/actions`)).json()) as {
      states: { action: string; valid: boolean; allowedAt?: number; why?: string }[];
    };
    const force = early.states.find((a) => a.action === "forceCancel");
    expect(force).toMatchObject({ valid: false });
    expect(force?.allowedAt).toBeGreaterThan(Date.now() + 4 * 60000);
    const hash = ctx.keys.request(ctx.keys.partition(cancelling), cancelling);
    await ctx.redis.hset(hash, "cancellingSince", Date.now() - 6 * 60000);
    expect(await actions(cancelling)).toEqual(["forceCancel"]);
    const withDead = await request();
    await deadLetters(withDead, 2);
    expect(await actions(withDead)).toEqual(["cancel", "replayDeadLetters"]);
    expect(await actions(newRequestId())).toEqual([]);
  });

  it("refuses an action the current state does not allow with 409, and audits the refusal", async () => {
    const done = await request("SUCCEEDED");
    const running = await request();
    const cases: [string, string][] = [
      [done, "cancel"],
      [running, "forceCancel"],
      [running, "rearm"],
      [running, "replayDeadLetters"],
    ];
    for (const [id, action] of cases) {
      const body = await problem(
        await post("operator", `/admin/requests/${id}/actions/${action}`, { reason: "r" }),
        409,
      );
      expect(body.errorCode, action).toBe("ESS-40903");
      const [last] = await audit(`?target=request/${id}&action=request.${action}`);
      expect(last, action).toMatchObject({ outcome: "refused", reason: "r", actor: "otto" });
    }
    // forceCancel too early is a state refusal as well
    const cancelling = await request();
    await post("operator", `/admin/requests/${cancelling}/actions/cancel`, { reason: "r" });
    await problem(await post("operator", `/admin/requests/${cancelling}/actions/forceCancel`, { reason: "r" }), 409);
    await problem(await post("operator", `/admin/requests/${newRequestId()}/actions/cancel`, { reason: "r" }), 404);
  });

  it("leaves an operator entry with the actor and reason in the request's history (GET /requests/{id})", async () => {
    const id = await request();
    await post("operator", `/admin/requests/${id}/actions/cancel`, { reason: "customer asked" });
    await ctx.redis.hset(ctx.keys.request(ctx.keys.partition(id), id), "cancellingSince", Date.now() - 6 * 60000);
    const force = await post("admin", `/admin/requests/${id}/actions/forceCancel`, { reason: "job is gone" });
    expect(await force.json()).toMatchObject({ from: "CANCELLING", to: "CANCELLED" });
    const [forceNote, forced, cancelNote, cancelled] = await history(id);
    expect(forced).toMatchObject({ outcome: "forceCancelled", to: "CANCELLED" });
    expect(forceNote).toMatchObject({
      outcome: "operator",
      action: "forceCancel",
      actor: "ada",
      reason: "job is gone",
      from: "CANCELLING",
      to: "CANCELLED",
    });
    expect(cancelled).toMatchObject({ outcome: "cancelRequested", to: "CANCELLING" });
    expect(cancelNote).toMatchObject({
      outcome: "operator",
      action: "cancel",
      actor: "otto",
      reason: "customer asked",
    });
  });

  it("re-arms a request in ERROR_MANUAL_RECOVERY under a new handle, and resumes a PAUSED one", async () => {
    const id = await request("ERROR_MANUAL_RECOVERY");
    const res = await post("operator", `/admin/requests/${id}/actions/rearm`, { reason: "disk freed" });
    expect(res.status).toBe(200);
    const out = (await res.json()) as { requestHandle: string; execution: number; to: string };
    expect(out).toMatchObject({ from: "ERROR_MANUAL_RECOVERY", to: "RUNNING", execution: 2 });
    // the new handle is the one callbacks must carry
    const cb = await ctx.app.request(`/ess/rest/scheduler/v1/requests/${id}/executionStatus`, {
      method: "POST",
      headers: { ...auth("job"), "content-type": "application/json" },
      body: JSON.stringify({ requestHandle: out.requestHandle, status: "UPDATE" }),
    });
    expect(cb.status).toBe(200);
    const [note, registered] = await history(id);
    expect(registered).toMatchObject({ outcome: "registered", from: "ERROR_MANUAL_RECOVERY", to: "RUNNING" });
    expect(note).toMatchObject({ outcome: "operator", action: "rearm", actor: "otto", reason: "disk freed" });

    const paused = await request("PAUSED");
    await ctx.redis.hset(ctx.keys.request(ctx.keys.partition(paused), paused), "pausedState", "step-3");
    const resumed = await post("operator", `/admin/requests/${paused}/actions/rearm`, { reason: "children done" });
    expect(await resumed.json()).toMatchObject({ from: "PAUSED", to: "RUNNING", pausedState: "step-3" });
    expect((await history(paused))[1]).toMatchObject({ outcome: "registered", reason: "resumed" });
  });

  it("replays a request's dead letters and notes it in the history", async () => {
    const id = await request();
    const dls = await deadLetters(id, 3);
    const res = await post("operator", `/admin/requests/${id}/actions/replayDeadLetters`, { reason: "bug fixed" });
    expect(await res.json()).toMatchObject({ replayed: 3, notFound: 0, from: "RUNNING", to: "RUNNING" });
    for (const dl of dls) expect(await ctx.deadLetters.get(dl.id)).toBeNull();
    expect((await history(id))[0]).toMatchObject({
      outcome: "operator",
      action: "replayDeadLetters",
      actor: "otto",
      reason: "bug fixed",
    });
    const [last] = await audit(`?target=request/${id}`);
    expect(last).toMatchObject({ action: "request.replayDeadLetters", count: 3, outcome: "succeeded" });
  });
});

describe("bulk dead-letter actions", () => {
  it("estimate → wrong typed count refused → confirm (ids snapshotted) → running, the filter never re-sent", async () => {
    const rid = newRequestId();
    await deadLetters(rid, 5);
    await deadLetters(newRequestId(), 2);
    const created = await post("admin", "/admin/actions", { kind: "replay", filter: { requestId: rid } });
    expect(created.status).toBe(201);
    const action = (await created.json()) as BulkAction;
    expect(created.headers.get("location")).toBe(`/admin/actions/${action.id}`);
    expect(action).toMatchObject({ kind: "replay", estimate: 5, state: "estimated", createdBy: "ada" });
    expect(action.filter).toMatchObject({ requestId: rid });
    expect(action.filter.to).toBeTypeOf("number");

    // a dead letter recorded after creation is outside the snapshotted filter
    await deadLetters(rid, 1, Date.now() + 1000);

    const wrong = await problem(
      await post("admin", `/admin/actions/${action.id}/confirm`, { count: 6, reason: "r" }),
      400,
    );
    expect(wrong.detail).toContain("estimate 5");
    await problem(await post("admin", `/admin/actions/${action.id}/confirm`, { count: 5 }), 400);
    await problem(await post("operator", `/admin/actions/${action.id}/confirm`, { count: 5, reason: "r" }), 403);
    const ok = await post("admin", `/admin/actions/${action.id}/confirm`, { count: 5, reason: "upstream fixed" });
    expect(ok.status).toBe(200);
    expect(await ok.json()).toMatchObject({ state: "running", actor: "ada", reason: "upstream fixed", estimate: 5 });
    const ids = await ctx.redis.lrange(ctx.keys.bulkActionIds(action.id), 0, -1);
    expect(ids).toHaveLength(5);
    // confirmed once only
    await problem(await post("admin", `/admin/actions/${action.id}/confirm`, { count: 5, reason: "r" }), 409);
    const jobs = await ctx.queues.ops().getJobs(["waiting", "delayed", "active"]);
    expect(jobs.some((j) => j.name === "bulk" && j.data.bulkId === action.id)).toBe(true);

    const seen = (await (await get("viewer", `/admin/actions/${action.id}`)).json()) as BulkAction;
    expect(seen).toMatchObject({ id: action.id, state: "running", processed: 0 });
    const list = (await (await get("viewer", "/admin/actions")).json()) as { items: BulkAction[] };
    expect(list.items[0]?.id).toBe(action.id);
    const trail = await audit(`?target=bulk/${action.id}`);
    expect(trail.map((e) => [e.action, e.outcome])).toEqual([
      ["bulk.confirm", "refused"],
      ["bulk.confirm", "succeeded"],
      ["bulk.confirm", "refused"],
      ["bulk.confirm", "refused"],
      ["bulk.create.replay", "succeeded"],
    ]);
    expect(trail[1]).toMatchObject({ count: 5, filter: action.filter, reason: "upstream fixed" });
  });

  it("refuses a confirmation when the match changed since the estimate, and offers the new count", async () => {
    const rid = newRequestId();
    const dls = await deadLetters(rid, 4);
    const action = (await (
      await post("admin", "/admin/actions", { kind: "purge", filter: { requestId: rid } })
    ).json()) as BulkAction;
    await ctx.deadLetters.remove(dls[0]?.id ?? "");
    const changed = await problem(
      await post("admin", `/admin/actions/${action.id}/confirm`, { count: 4, reason: "r" }),
      409,
    );
    expect(changed.detail).toContain("matches 3");
    expect(await (await get("admin", `/admin/actions/${action.id}`)).json()).toMatchObject({
      state: "estimated",
      estimate: 3,
    });
    const ok = await post("admin", `/admin/actions/${action.id}/confirm`, { count: 3, reason: "r" });
    expect(ok.status).toBe(200);
  });

  it("two confirmations at once: one wins, and the snapshot holds each id once", async () => {
    const rid = newRequestId();
    await deadLetters(rid, 30);
    const action = (await (
      await post("admin", "/admin/actions", { kind: "replay", filter: { requestId: rid } })
    ).json()) as BulkAction;
    const answers = await Promise.all(
      [1, 2, 3].map(() => post("admin", `/admin/actions/${action.id}/confirm`, { count: 30, reason: "r" })),
    );
    expect(answers.map((r) => r.status).sort()).toEqual([200, 409, 409]);
    const ids = await ctx.redis.lrange(ctx.keys.bulkActionIds(action.id), 0, -1);
    expect(ids).toHaveLength(30);
    expect(new Set(ids).size).toBe(30);
  });

  it("aborts an estimated action at once and refuses to abort it twice", async () => {
    const action = (await (await post("admin", "/admin/actions", { kind: "replay", filter: {} })).json()) as BulkAction;
    await problem(await post("admin", `/admin/actions/${action.id}/abort`, {}), 400);
    const res = await post("admin", `/admin/actions/${action.id}/abort`, { reason: "wrong filter" });
    expect(await res.json()).toMatchObject({ state: "aborted", abortedBy: "ada", abortReason: "wrong filter" });
    await problem(await post("admin", `/admin/actions/${action.id}/abort`, { reason: "again" }), 409);
    await problem(
      await post("admin", `/admin/actions/${action.id}/confirm`, { count: action.estimate, reason: "r" }),
      409,
    );
  });

  it("answers 400 for a bad filter or kind and 404 for an unknown action", async () => {
    await problem(await post("admin", "/admin/actions", { kind: "delete", filter: {} }), 400);
    await problem(await post("admin", "/admin/actions", { kind: "replay", filter: { partition: 99 } }), 400);
    await problem(await post("admin", "/admin/actions", { kind: "replay", filter: { bogus: 1 } }), 400);
    await problem(await get("admin", "/admin/actions/0123456789abcdef"), 404);
    await problem(await get("admin", "/admin/actions/nope"), 404);
    await problem(await post("admin", "/admin/actions/0123456789abcdef/abort", { reason: "r" }), 404);
  });
});

describe("audit log", () => {
  it("is bounded: past its cap the oldest entries go", async () => {
    // a log of its own (keys under the test's prefix, dropped with it)
    const own = new AuditLog(ctx.redis, new Keys(`${ctx.prefix}:cap`, 4), 5);
    for (let i = 0; i < 8; i++) {
      await own.record({ actor: "a", role: "admin", action: `t.${i}`, target: "x", reason: "r", outcome: "succeeded" });
    }
    expect(await own.length()).toBe(5);
    const { items } = await own.list({ limit: 10 });
    expect(items.map((e) => e.action)).toEqual(["t.7", "t.6", "t.5", "t.4", "t.3"]);
  });

  it("pages newest first with a cursor and filters by actor, action and target", async () => {
    const first = await get("viewer", "/admin/audit?limit=2");
    const page1 = (await first.json()) as { items: AuditEntry[]; next?: string };
    expect(page1.items).toHaveLength(2);
    expect(page1.next).toBeDefined();
    const page2 = (await (await get("viewer", `/admin/audit?limit=2&cursor=${page1.next}`)).json()) as {
      items: AuditEntry[];
    };
    expect((page2.items[0]?.id ?? "") < (page1.items[1]?.id ?? "")).toBe(true);
    const bulkEntries = await audit("?limit=500&action=bulk.*");
    expect(bulkEntries.length).toBeGreaterThan(0);
    expect(bulkEntries.every((e) => e.action.startsWith("bulk."))).toBe(true);
    const all = await audit("?limit=500&action=request.cancel");
    expect(all.length).toBeGreaterThan(0);
    expect(all.every((e) => e.action === "request.cancel")).toBe(true);
    await problem(await get("viewer", "/admin/audit?cursor=zzz"), 400);
    await problem(await get("viewer", "/admin/audit?limit=0"), 400);
  });

  it("records the older admin API's actions with the principal as actor", async () => {
    const [dl] = await deadLetters(newRequestId(), 1);
    const res = await ctx.adminApp.request(`/admin/dead-letters/${dl?.id}`, {
      method: "DELETE",
      headers: auth("admin"),
    });
    expect(res.status).toBe(204);
    const [last] = await audit(`?target=dead-letter/${dl?.id}`);
    expect(last).toMatchObject({
      actor: "ada",
      role: "admin",
      action: "deadLetter.purge",
      reason: "",
      outcome: "succeeded",
    });
  });
});
