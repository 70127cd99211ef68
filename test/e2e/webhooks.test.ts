import "@ess/testing/provided";
import { execFile } from "node:child_process";
import { randomInt } from "node:crypto";
import { promisify } from "node:util";
import { cloudEventSchema, WEBHOOK_HEADERS } from "@ess/contract";
import type { DeliveryAttempt, Subscription } from "@ess/store";
import { eventually, ROOT, type RunningProcess, startApp } from "@ess/testing";
import { uniquePrefix } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { postJson, registerRequest } from "../support/http.js";
import { type ReceivedDelivery, type ReceiverProcess, startReceiver } from "../support/receiver.js";

// Outbound events through a real gateway and worker, to receivers that are processes of their own
const KEK = "e2e-webhook-kek-0123456789";
const run = promisify(execFile);
let gateway: RunningProcess;
let worker: RunningProcess;
let base: string;
let env: Record<string, string>;
/** answers every delivery at once */
let healthy: ReceiverProcess;
/** fails the first three deliveries to each path */
let flaky: ReceiverProcess;
/** holds every delivery until released */
let slow: ReceiverProcess;

beforeAll(async () => {
  env = {
    REDIS_URL: inject("redisUrl"),
    KEY_PREFIX: uniquePrefix(),
    PARTITIONS: "4",
    WEBHOOK_SECRET: KEK,
    // the receivers listen on loopback, which the webhook address policy refuses unless opened
    WEBHOOK_ALLOW_HOSTS: "127.0.0.1",
    WEBHOOK_BACKOFF_MS: "100",
    // a held delivery must not time out while the test looks at the others
    WEBHOOK_TIMEOUT_MS: "120000",
  };
  [gateway, worker, healthy, flaky, slow] = await Promise.all([
    startApp("gateway", env),
    startApp("worker", env),
    startReceiver(),
    startReceiver({ RECEIVER_FAIL_FIRST: "3" }),
    startReceiver({ RECEIVER_HOLD: "1" }),
  ]);
  base = gateway.url;
});

afterAll(async () => {
  await slow?.release().catch(() => {});
  const codes = await Promise.all([gateway?.stop(), worker?.stop()]);
  await Promise.all([healthy?.stop(), flaky?.stop(), slow?.stop()]);
  expect(codes).toEqual([0, 0]);
});

const newId = () => String(randomInt(1, 2 ** 40));
const R = (id: string, op: string) => `${base}/ess/rest/scheduler/v1/requests/${id}/${op}`;
const SUBS = (id: string) => `${base}/gateway/v1/requests/${id}/subscriptions`;

async function subscribe(id: string, callbackUrl: string, secret?: string) {
  const res = await postJson(R(id, "subscribe"), { callbackUrl, ...(secret ? { secret } : {}) });
  expect(res.status).toBe(200);
  return (await res.json()) as { subscriptionId: string; secret: string; added: boolean };
}

/** A registered request with `events` more state changes to come: re-registrations, then a cancel. */
async function registered(): Promise<string> {
  const id = newId();
  await registerRequest(base, id);
  return id;
}
async function stateChanges(id: string, registrations: number): Promise<void> {
  for (let i = 0; i < registrations; i++) await registerRequest(base, id);
  const res = await fetch(R(id, "cancel"), { method: "POST" });
  expect(res.status).toBe(200);
}

/** The deliveries of one request (subject), in arrival order, as (seq, answer). */
function ofRequest(all: ReceivedDelivery[], id: string) {
  return all
    .map((d) => ({ d, e: cloudEventSchema.parse(JSON.parse(d.body)) }))
    .filter(({ e }) => e.subject === id)
    .map(({ d, e }) => ({ seq: e.data.seq, answered: d.answered, event: e, delivery: d }));
}

async function deliveryLog(id: string, subId: string): Promise<DeliveryAttempt[]> {
  const res = await fetch(`${SUBS(id)}/${subId}/deliveries`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { items: DeliveryAttempt[] }).items;
}

/** Runs the operator CLI as a user would (npm run cli -- ...). */
async function cli(...args: string[]): Promise<string> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", "apps/cli/src/main.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
  });
  return stdout;
}

describe("webhooks to receivers in their own processes", () => {
  it("a receiver that fails three times, then succeeds, sees every event of each request in order; the log shows every attempt", async () => {
    const ids = [await registered(), await registered(), await registered()];
    const subs = new Map<string, string>();
    for (const id of ids) subs.set(id, (await subscribe(id, `${flaky.url}/flaky/${id}`)).subscriptionId);
    for (const id of ids) await stateChanges(id, 3);
    for (const id of ids) {
      const got = await eventually(
        async () => {
          const mine = ofRequest(await flaky.received(`/flaky/${id}`), id);
          return mine.filter((m) => m.answered === 204).length >= 4 && mine;
        },
        60000,
        `request ${id}'s four events`,
      );
      // the first event failed three times and held back the three after it; then all in seq order
      expect(got.map((g) => [g.seq, g.answered])).toEqual([
        [2, 500],
        [2, 500],
        [2, 500],
        [2, 204],
        [3, 204],
        [4, 204],
        [5, 204],
      ]);
      expect(got.map((g) => g.event.data.event)).toEqual([...Array(6).fill("REQUEST_RUNNING"), "REQUEST_CANCELLING"]);
      // every attempt of one event carries the same webhook-id and body
      expect(new Set(got.slice(0, 4).map((g) => g.delivery.headers[WEBHOOK_HEADERS.id])).size).toBe(1);
      expect(new Set(got.slice(0, 4).map((g) => g.delivery.body)).size).toBe(1);
      const subId = subs.get(id) as string;
      const log = await eventually(async () => {
        const entries = await deliveryLog(id, subId);
        return entries.length >= 7 && entries;
      });
      expect(
        log
          .slice()
          .reverse()
          .map((a) => [a.seq, a.attempt, a.outcome, a.status]),
      ).toEqual([
        [2, 1, "failed", 500],
        [2, 2, "failed", 500],
        [2, 3, "failed", 500],
        [2, 4, "delivered", 204],
        [3, 1, "delivered", 204],
        [4, 1, "delivered", 204],
        [5, 1, "delivered", 204],
      ]);
      for (const a of log) {
        expect(a.eventId).toMatch(/^\d+-\d+\/\d$/);
        expect(a.latencyMs).toBeGreaterThanOrEqual(0);
        expect(a.kind).toBe("ordered");
      }
      expect(log.filter((a) => a.outcome === "failed").every((a) => a.error === "receiver answered 500")).toBe(true);
    }
    // the operator's view of the same log, and a redelivery of one event through the CLI
    const [first] = ids as [string];
    const subId = subs.get(first) as string;
    const table = (await cli("webhooks", "log", first, subId)).trim().split("\n");
    expect(table[0]).toBe("at\teventId\tseq\tkind\tattempt\toutcome\tstatus\tlatencyMs\terror");
    expect(table.slice(1).map((l) => l.split("\t").slice(2, 7))).toEqual([
      ["5", "ordered", "1", "delivered", "204"],
      ["4", "ordered", "1", "delivered", "204"],
      ["3", "ordered", "1", "delivered", "204"],
      ["2", "ordered", "4", "delivered", "204"],
      ["2", "ordered", "3", "failed", "500"],
      ["2", "ordered", "2", "failed", "500"],
      ["2", "ordered", "1", "failed", "500"],
    ]);
    const listed = JSON.parse(await cli("webhooks", "list", first, "--json")) as Subscription[];
    expect(listed).toMatchObject([{ id: subId, callbackUrl: `${flaky.url}/flaky/${first}`, since: 1, next: 6 }]);
    const seq3 = (await deliveryLog(first, subId)).find((a) => a.seq === 3)?.eventId as string;
    expect(await cli("webhooks", "redeliver", first, subId, seq3)).toMatch(/^redelivery of .* \(seq 3\) queued/);
    const again = await eventually(async () => {
      const mine = ofRequest(await flaky.received(`/flaky/${first}`), first).filter((m) => m.seq === 3);
      return mine.length === 2 && mine;
    });
    expect(again[1]?.delivery.body).toBe(again[0]?.delivery.body);
    await eventually(async () =>
      (await deliveryLog(first, subId)).some((a) => a.kind === "redelivery" && a.outcome === "delivered"),
    );
  });

  it("a slow receiver delays neither the other subscribers nor its own other requests", async () => {
    const [a, b, c, d] = [await registered(), await registered(), await registered(), await registered()];
    // the slow receiver: one URL subscribed to requests a and d; the healthy one to all four
    for (const id of [a, d]) await subscribe(id, `${slow.url}/slow`);
    for (const id of [a, b, c, d]) await subscribe(id, `${healthy.url}/fast`);
    for (const id of [a, b, c, d]) await stateChanges(id, 2);
    const fast = await eventually(
      async () => {
        const all = await healthy.received("/fast");
        return [a, b, c, d].every((id) => ofRequest(all, id).length >= 3) && all;
      },
      60000,
      "every event at the healthy receiver",
    );
    for (const id of [a, b, c, d]) expect(ofRequest(fast, id).map((x) => x.seq)).toEqual([2, 3, 4]);
    // meanwhile the slow receiver holds exactly one delivery per request: each request's head, nothing after it
    await eventually(async () => (await slow.held()) === 2, 30000, "one held delivery per request");
    const held = await slow.received("/slow");
    expect(held.every((x) => x.answered === null)).toBe(true);
    expect(ofRequest(held, a).map((x) => x.seq)).toEqual([2]);
    expect(ofRequest(held, d).map((x) => x.seq)).toEqual([2]);
    await slow.release();
    const all = await eventually(async () => {
      const got = await slow.received("/slow");
      return ofRequest(got, a).length >= 3 && ofRequest(got, d).length >= 3 && got;
    }, 60000);
    for (const id of [a, d])
      expect(ofRequest(all, id).map((x) => [x.seq, x.answered])).toEqual([
        [2, 204],
        [3, 204],
        [4, 204],
      ]);
  });

  it("signatures verify before, during and after a secret rotation", async () => {
    const id = await registered();
    const path = `/rot/${id}`;
    const { subscriptionId, secret: s1 } = await subscribe(id, `${healthy.url}${path}`);
    await healthy.secrets(path, [s1]);
    // before: one signature, by s1
    await registerRequest(base, id);
    const before = await eventually(async () => (await healthy.received(path)).at(0));
    expect(before.verifiedWith).toEqual([true]);
    expect(String(before.headers[WEBHOOK_HEADERS.signature]).split(" ")).toHaveLength(1);

    // during: both signatures in the one header, each verifies on its own
    const rotated = await postJson(`${SUBS(id)}/${subscriptionId}/rotate`, { graceSeconds: 3600 });
    expect(rotated.status).toBe(200);
    const r1 = (await rotated.json()) as { secret: string; previousSecretValidUntil: string };
    expect(r1.secret).not.toBe(s1);
    expect(Date.parse(r1.previousSecretValidUntil)).toBeGreaterThan(Date.now() + 3500_000);
    await healthy.secrets(path, [s1, r1.secret]);
    await registerRequest(base, id);
    const during = await eventually(async () => (await healthy.received(path)).at(1));
    expect(during.verifiedWith).toEqual([true, true]);
    expect(String(during.headers[WEBHOOK_HEADERS.signature]).split(" ")).toHaveLength(2);

    // after: a rotation with a window of one second; once it has passed, only the newest secret signs
    const again = await postJson(`${SUBS(id)}/${subscriptionId}/rotate`, { graceSeconds: 1 });
    const s3 = ((await again.json()) as { secret: string }).secret;
    await eventually(async () => {
      const sub = (await (await fetch(`${SUBS(id)}/${subscriptionId}`)).json()) as Subscription;
      return (sub.previousSecretValidUntil ?? 0) < Date.now();
    }, 10000);
    await healthy.secrets(path, [s1, r1.secret, s3]);
    await fetch(R(id, "cancel"), { method: "POST" });
    const after = await eventually(async () => (await healthy.received(path)).at(2));
    expect(after.verifiedWith).toEqual([false, false, true]);
    expect(String(after.headers[WEBHOOK_HEADERS.signature]).split(" ")).toHaveLength(1);
    expect(ofRequest(await healthy.received(path), id).map((x) => x.seq)).toEqual([2, 3, 4]);
  });
});
