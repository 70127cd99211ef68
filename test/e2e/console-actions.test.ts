import "@ess/testing/provided";
import { type AuditEntry, type BulkAction, CallbackQueues, DeadLetters, Keys } from "@ess/store";
import { eventually, failedJob, type RunningProcess, startApp } from "@ess/testing";
import { dropPrefix, testRedis, testRedisEnv, uniquePrefix } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../support/cli.js";

const ADMIN = "e2e-admin-token-0123456789";
const OPERATOR = "e2e-operator-token-0123456789";
let gateway: RunningProcess;
let worker: RunningProcess;
const env: Record<string, string> = {
  REDIS_URL: "",
  KEY_PREFIX: uniquePrefix(),
  PARTITIONS: "4",
  AUTH_TOKENS: `ada:admin:${ADMIN},otto:operator:${OPERATOR}`,
};
const redis = testRedis("tool");
const keys = new Keys(env.KEY_PREFIX as string, 4);
const queues = new CallbackQueues(redis, keys, { attempts: 2, backoffMs: 10 });
const dlq = new DeadLetters(redis, keys, (p, name) => queues.queue(p, name));

const call = (token: string, method: string, url: string, body?: unknown) =>
  fetch(url, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });

const cli = (...args: string[]) => runCli(env, ...args);

beforeAll(async () => {
  Object.assign(env, testRedisEnv());
  [gateway, worker] = await Promise.all([startApp("gateway", env), startApp("worker", env)]);
});

afterAll(async () => {
  await Promise.all([gateway?.stop(), worker?.stop()]);
  await queues.close();
  await dropPrefix(redis, env.KEY_PREFIX as string);
  await redis.quit();
});

describe("operator console actions across processes", () => {
  it("a bulk replay: estimate, typed confirmation, progress in the worker, results; later entries untouched", async () => {
    // dead letters of requests in every partition: the action spans them (and, on a Cluster, its masters)
    const before = Date.now() - 60000;
    // two requests per partition
    const ids: string[] = [];
    const per = new Map<number, number>();
    for (let id = 770001; ids.length < 8; id++) {
      const p = keys.partition(String(id));
      if ((per.get(p) ?? 0) >= 2) continue;
      per.set(p, (per.get(p) ?? 0) + 1);
      ids.push(String(id));
    }
    let n = 0;
    for (const rid of ids) {
      for (let seq = 1; seq <= 2; seq++) {
        await dlq.record(keys.partition(rid), failedJob(rid, seq, "UPDATE"), before + n++);
      }
    }
    expect(new Set(ids.map((rid) => keys.partition(rid))).size).toBe(4);
    const created = await call(ADMIN, "POST", `${gateway.adminUrl}/admin/actions`, {
      kind: "replay",
      filter: { status: "UPDATE" },
    });
    expect(created.status).toBe(201);
    const action = (await created.json()) as BulkAction;
    expect(action).toMatchObject({ state: "estimated", estimate: 16 });

    const wrong = await call(ADMIN, "POST", `${gateway.adminUrl}/admin/actions/${action.id}/confirm`, {
      count: 40,
      reason: "typo",
    });
    expect(wrong.status).toBe(400);
    const ok = await call(ADMIN, "POST", `${gateway.adminUrl}/admin/actions/${action.id}/confirm`, {
      count: 16,
      reason: "consumer fixed",
    });
    expect(ok.status).toBe(200);
    // dead-lettered after the confirmation, within the filter's time bound: not in the snapshot
    const [late] = await dlq.record(
      keys.partition(ids[0] as string),
      failedJob(ids[0] as string, 99, "UPDATE"),
      before + 5,
    );

    const done = await eventually(async () => {
      const res = await call(ADMIN, "GET", `${gateway.adminUrl}/admin/actions/${action.id}`);
      const cur = (await res.json()) as BulkAction;
      return cur.state === "done" ? cur : null;
    }, 20000);
    expect(done).toMatchObject({ processed: 16, succeeded: 16, failed: 0, results: { replayed: 16 } });
    expect(late).toBeDefined();
    expect(await dlq.get(late?.id ?? "")).toMatchObject({ deadAt: late?.deadAt });

    // the audit trail, read with the CLI: create, the refused and the accepted confirmation, the worker's end
    const audit = await cli("audit", "--target", `bulk/${action.id}`, "--json");
    expect(audit.code).toBe(0);
    const items = (JSON.parse(audit.out) as { items: AuditEntry[] }).items;
    expect(items.map((e) => [e.action, e.outcome])).toEqual([
      ["bulk.finish", "succeeded"],
      ["bulk.confirm", "succeeded"],
      ["bulk.confirm", "refused"],
      ["bulk.create.replay", "succeeded"],
    ]);
    expect(items[0]).toMatchObject({ actor: "ada", count: 16, reason: "consumer fixed" });
    const table = await cli("audit", "--actor", "ada", "--limit", "2");
    expect(table.out).toContain("bulk.finish");
    expect(table.out).toContain("more: --cursor");
  });

  it("an operator cancels with a reason; the request's history names them", async () => {
    const id = "770002";
    const reg = await call(ADMIN, "POST", `${gateway.url}/gateway/v1/requests/${id}/executions`, {});
    expect(reg.status).toBe(201);
    const res = await call(OPERATOR, "POST", `${gateway.adminUrl}/admin/requests/${id}/actions/cancel`, {
      reason: "runaway job",
    });
    expect(res.status).toBe(200);
    const details = await call(ADMIN, "GET", `${gateway.url}/ess/rest/scheduler/v1/requests/${id}`);
    const body = (await details.json()) as { state: string; history: Record<string, unknown>[] };
    expect(body.state).toBe("CANCELLING");
    expect(body.history[0]).toMatchObject({
      outcome: "operator",
      action: "cancel",
      actor: "otto",
      reason: "runaway job",
    });
  });
});
