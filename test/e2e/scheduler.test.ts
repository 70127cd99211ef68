import "@ess/testing/provided";
import { spawn } from "node:child_process";
import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { EssClientError, EssJobClient } from "@ess/client";
import { cloudEventSchema, newWebhookSecret, WEBHOOK_HEADERS } from "@ess/contract";
import { createRedis, Keys, RequestStore, SecretBox, WebhookStore } from "@ess/store";
import { eventually, ROOT, type RunningProcess, readSse, startApp } from "@ess/testing";
import { uniquePrefix } from "@ess/testing/context";
import { Webhook } from "standardwebhooks";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { details, postJson, registerRequest } from "../support/http.js";

// the scheduler side through a real gateway process and a real worker process
const SECRET = "e2e-webhook-secret-123456";
const QUIET_MS = 4000;
let gateway: RunningProcess;
let worker: RunningProcess;
let base: string;
let env: Record<string, string>;

let receiver: Server;
let receiverUrl: string;
const received: { path: string; headers: IncomingMessage["headers"]; body: string; answered: number }[] = [];
const failFirst = new Set<string>();

beforeAll(async () => {
  env = {
    REDIS_URL: inject("redisUrl"),
    KEY_PREFIX: uniquePrefix(),
    PARTITIONS: "4",
    FORCE_CANCEL_QUIET_MS: String(QUIET_MS),
    TIMEOUT_SWEEP_MS: "100",
    WEBHOOK_SECRET: SECRET,
    // the receiver listens on loopback, which the webhook address policy refuses unless opened
    WEBHOOK_ALLOW_HOSTS: "127.0.0.1",
    WEBHOOK_BACKOFF_MS: "100",
    SSE_POLL_MS: "50",
  };
  receiver = createServer((req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => {
      body += d.toString();
    });
    req.on("end", () => {
      const path = req.url ?? "";
      const answered = failFirst.delete(path) ? 500 : 204;
      received.push({ path, headers: req.headers, body, answered });
      res.statusCode = answered;
      res.end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  [gateway, worker] = await Promise.all([startApp("gateway", env), startApp("worker", env)]);
  base = gateway.url;
});

afterAll(async () => {
  const codes = await Promise.all([gateway?.stop(), worker?.stop()]);
  await new Promise((r) => receiver.close(r));
  expect(codes).toEqual([0, 0]);
});

let next = 7000;
const newId = () => String(++next);
const R = (id: string, op = "") => `${base}/ess/rest/scheduler/v1/requests/${id}${op ? `/${op}` : ""}`;
const scheduler = (id: string, op: string) => fetch(R(id, op), { method: "POST" });

async function settle(id: string, want: (d: Record<string, unknown>) => boolean, what: string) {
  return eventually(
    async () => {
      const d = await details(base, id);
      return want(d) && d;
    },
    30000,
    what,
  );
}

function clientFor(id: string, requestHandle: string, fetchFn?: typeof fetch) {
  return new EssJobClient({
    baseUrl: base,
    requestId: id,
    requestHandle,
    backoffMs: 50,
    ...(fetchFn ? { fetch: fetchFn } : {}),
  });
}

describe("cancel, check-in and forceCancel end to end (with the job client)", () => {
  it("a RUNNING job hears of the cancel on its next heartbeat and check-in, reports CANCEL → CANCELLED", async () => {
    const id = newId();
    const { requestHandle } = await registerRequest(base, id);
    const job = clientFor(id, requestHandle);
    expect(await job.heartbeat("working")).toEqual({ cancelRequested: false });
    expect(await job.checkInCancelling()).toBe(false);
    const res = await scheduler(id, "cancel");
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ state: "CANCELLING", link: { href: R(id), rel: "self" } });
    expect(await job.heartbeat()).toEqual({ cancelRequested: true });
    expect(await job.checkInCancelling()).toBe(true);
    await job.reportStatus("CANCEL", "stopped");
    const d = await settle(id, (d) => d.state === "CANCELLED", "CANCELLED");
    expect(d).toMatchObject({ cause: "PROCESS_CANCEL" });
    expect(d.history.map((h) => h.outcome)).toContain("cancelRequested");
    // the request is over: the job's next call is refused, and a second cancel is 400
    await expect(job.heartbeat()).rejects.toMatchObject({ status: 403, errorCode: "ESS-40302" });
    const again = await scheduler(id, "cancel");
    expect(again.status).toBe(400);
    expect(await again.json()).toMatchObject({ title: "Unsupported state for operation" });
  });

  it("forceCancel: 400 within the quiet period, 200 after it; the job is then refused", async () => {
    const id = newId();
    const { requestHandle } = await registerRequest(base, id);
    expect((await scheduler(id, "cancel")).status).toBe(200);
    const early = await scheduler(id, "forceCancel");
    expect(early.status).toBe(400);
    expect(await early.json()).toMatchObject({ errorCode: "ESS-40007" });
    const ok = await eventually(
      async () => {
        const res = await scheduler(id, "forceCancel");
        return res.status === 200 && res;
      },
      30000,
      "forceCancel allowed",
    );
    expect(await ok.json()).toMatchObject({ state: "CANCELLED", previousState: "CANCELLING" });
    expect((await details(base, id)).state).toBe("CANCELLED");
    const err = await clientFor(id, requestHandle)
      .heartbeat()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EssClientError);
    expect((err as EssClientError).status).toBe(403);
  });

  it("the client retries a call whose answer was lost with the same Idempotency-Key: applied once", async () => {
    const id = newId();
    const { requestHandle } = await registerRequest(base, id);
    const keys: string[] = [];
    let calls = 0;
    const lossy: typeof fetch = async (input, init) => {
      keys.push(new Headers(init?.headers).get("idempotency-key") ?? "");
      const res = await fetch(input, init);
      calls++;
      if (calls === 1) throw new Error("connection reset (answer lost)");
      return res;
    };
    await clientFor(id, requestHandle, lossy).heartbeat("once");
    expect(keys).toHaveLength(2);
    expect(keys[0]).toBe(keys[1]);
    const d = await settle(id, (d) => d.lastCheckInTime !== null, "check-in applied");
    expect(d.history.filter((h) => h.status === "UPDATE")).toHaveLength(1);
  });
});

describe("timeouts end to end", () => {
  it("a request without callbacks past its requestTimeout is marked timed out, state kept, event published", async () => {
    const id = newId();
    const sse = await fetch(`${base}/gateway/v1/events?requestId=${id}`);
    await registerRequest(base, id, { requestTimeout: 0.01 });
    const d = await settle(id, (d) => d.isTimedOut === true, "isTimedOut");
    expect(d.state).toBe("RUNNING");
    expect(d.history[0]).toMatchObject({ outcome: "timedOut" });
    const got = await readSse(sse, (e) => e.some((x) => x.event === "REQUEST_TIMED_OUT"), 30000);
    expect(got.map((e) => e.event)).toEqual(["REQUEST_RUNNING", "REQUEST_TIMED_OUT"]);
  });
});

describe("events out end to end", () => {
  it("SSE resumes with Last-Event-ID after a disconnect", async () => {
    const id = newId();
    const first = await fetch(`${base}/gateway/v1/events?requestId=${id}`);
    const { requestHandle } = await registerRequest(base, id);
    const seen = await readSse(first, (e) => e.length >= 1);
    expect(seen[0]?.event).toBe("REQUEST_RUNNING");
    await scheduler(id, "cancel");
    await clientFor(id, requestHandle).reportStatus("CANCEL");
    await settle(id, (d) => d.state === "CANCELLED", "CANCELLED");
    const again = await fetch(`${base}/gateway/v1/events?requestId=${id}`, {
      headers: { "last-event-id": seen[0]?.id ?? "" },
    });
    const rest = await readSse(again, (e) => e.length >= 2);
    expect(rest.map((e) => e.event)).toEqual(["REQUEST_CANCELLING", "REQUEST_CANCELLED"]);
  });

  it("webhooks: each state change POSTed in order as a signed CloudEvent, retried after the receiver failed once", async () => {
    const id = newId();
    const { requestHandle } = await registerRequest(base, id);
    const path = `/hooks/${id}`;
    failFirst.add(path);
    const sub = await postJson(R(id, "subscribe"), { callbackUrl: `${receiverUrl}${path}` });
    expect(sub.status).toBe(200);
    const { secret } = (await sub.json()) as { secret: string };
    await scheduler(id, "cancel");
    await clientFor(id, requestHandle).reportStatus("CANCEL");
    const got = await eventually(
      async () => {
        const mine = received.filter((r) => r.path === path && r.answered === 204);
        return mine.length >= 2 && mine;
      },
      30000,
      "two deliveries",
    );
    // in order: the failed first event held back the second until its retry succeeded
    const all = received.filter((r) => r.path === path);
    expect(all.map((r) => r.answered)).toEqual([500, 204, 204]);
    expect(all[1]?.body).toBe(all[0]?.body);
    expect(all[1]?.headers[WEBHOOK_HEADERS.id]).toBe(all[0]?.headers[WEBHOOK_HEADERS.id]);
    const events = got.map((r) =>
      cloudEventSchema.parse(new Webhook(secret).verify(r.body, r.headers as Record<string, string>)),
    );
    expect(events.map((e) => [e.data.event, e.data.seq])).toEqual([
      ["REQUEST_CANCELLING", 2],
      ["REQUEST_CANCELLED", 3],
    ]);
  });
});

describe("the webhook address policy through the real processes (WEBHOOK_ALLOW_HOSTS=127.0.0.1)", () => {
  it("the gateway refuses an inward URL the allowlist does not open; the worker refuses one stored without the gateway", async () => {
    const id = newId();
    await registerRequest(base, id);
    const port = new URL(receiverUrl).port;
    const res = await postJson(R(id, "subscribe"), { callbackUrl: `http://localhost:${port}/refused/${id}` });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { detail: string }).detail).toBe(
      "callbackUrl names a loopback host (localhost), refused by the webhook address policy",
    );
    // 127.0.0.2 is loopback and outside the allowlist: written straight into Redis, the worker refuses it
    const stored = `http://127.0.0.2:${port}/refused/${id}`;
    const redis = createRedis(env.REDIS_URL ?? "", "tool");
    try {
      const keys = new Keys(env.KEY_PREFIX ?? "", 4);
      const hooks = new WebhookStore(new RequestStore(redis, keys), SecretBox.fromKeyEncryptionKey(SECRET));
      await hooks.subscribe(id, stored, newWebhookSecret());
      await scheduler(id, "cancel");
      const dead = await eventually(
        async () => {
          const list = (await (
            await fetch(`${gateway.adminUrl}/admin/dead-letters?partition=${keys.partition(id)}`)
          ).json()) as {
            items: { error: string; reason: string; attempts: number; payload: { url?: string } }[];
          };
          return list.items.find((e) => e.payload.url === stored);
        },
        30000,
        "the refused delivery in the dead letters",
      );
      expect(dead).toMatchObject({ reason: "permanent-error", attempts: 1 });
      expect(dead.error).toBe(
        "webhook target 127.0.0.2 resolves to a loopback address (127.0.0.2), refused by the webhook address policy",
      );
      expect(received.filter((r) => r.path.startsWith("/refused/"))).toEqual([]);
    } finally {
      await redis.quit();
    }
  });
});

/** Runs an example script as its own process, collecting what it prints. */
function runExample(script: string, env: Record<string, string>) {
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const collect = (d: Buffer) => {
    out += d.toString();
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
  return { child, exited, output: () => out };
}

describe("the example job (examples/async-job.ts)", () => {
  function runJob(id: string, requestHandle: string, extra: Record<string, string>) {
    return runExample("examples/async-job.ts", {
      GATEWAY_URL: base,
      REQUEST_ID: id,
      REQUEST_HANDLE: requestHandle,
      ...extra,
    });
  }

  it("heartbeats and reports SUCCESS", async () => {
    const id = newId();
    const { requestHandle } = await registerRequest(base, id);
    const job = runJob(id, requestHandle, { STEPS: "3", STEP_MS: "50" });
    expect(await job.exited).toBe(0);
    const d = await settle(id, (d) => d.state === "SUCCEEDED", "SUCCEEDED");
    expect(d.history.filter((h) => h.status === "UPDATE")).toHaveLength(3);
  });

  it("honours a cancel: stops and reports CANCEL", async () => {
    const id = newId();
    const { requestHandle } = await registerRequest(base, id);
    const job = runJob(id, requestHandle, { STEPS: "1000", STEP_MS: "100" });
    await eventually(async () => job.output().includes('"step done"'), 30000, "the job to start working");
    expect((await scheduler(id, "cancel")).status).toBe(200);
    expect(await job.exited).toBe(0);
    expect(job.output()).toContain('"cancelled"');
    await settle(id, (d) => d.state === "CANCELLED" && d.cause === "PROCESS_CANCEL", "CANCELLED by the job");
  });
});

describe("the example event consumer (examples/event-consumer.ts)", () => {
  it("reads the partitions' streams through a consumer group and acknowledges what it read", async () => {
    const id = newId();
    await registerRequest(base, id);
    const { child, exited, output } = runExample("examples/event-consumer.ts", {
      ...env,
      GROUP: "e2e-consumer",
      FROM_START: "1",
    });
    try {
      await eventually(async () => output().includes(`"subject":"${id}"`), 30000, "the consumer to print the event");
      const line =
        output()
          .split("\n")
          .find((l) => l.includes(`"subject":"${id}"`)) ?? "{}";
      // the CloudEvent of the state change, as webhooks and SSE carry it
      expect(cloudEventSchema.parse(JSON.parse(line))).toMatchObject({
        type: "ess.request.running",
        subject: id,
        data: { event: "REQUEST_RUNNING", state: "RUNNING", seq: 1 },
      });
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
    const redis = createRedis(env.REDIS_URL ?? "", "tool");
    try {
      const keys = new Keys(env.KEY_PREFIX ?? "", 4);
      const groups = (await redis.xinfo("GROUPS", keys.events(keys.partition(id)))) as (string | number)[][];
      const group = groups.find((g) => g.includes("e2e-consumer")) ?? [];
      expect(group[group.indexOf("pending") + 1]).toBe(0);
    } finally {
      await redis.quit();
    }
  });
});

describe("shutdown with open SSE streams", () => {
  it("a gateway stopped while SSE clients are connected ends their streams and exits 0", async () => {
    const other = await startApp("gateway", { ...env, SHUTDOWN_TIMEOUT_SECONDS: "30" });
    try {
      const res = await fetch(`${other.url}/gateway/v1/events`);
      expect(res.status).toBe(200);
      const reader = res.body?.getReader();
      await reader?.read(); // the "ready" event: the stream is open
      const code = await other.stop();
      expect(code).toBe(0);
      // the stream ended instead of hanging
      for (;;) {
        const r = await reader?.read().catch(() => ({ done: true }));
        if (!r || r.done) break;
      }
    } finally {
      await other.kill();
    }
  });
});
