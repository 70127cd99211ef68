import type { LookupAddress } from "node:dns";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { WebhookAddressPolicy } from "@ess/contract";
import { createRedis, SchedulerStore, WEBHOOK_QUEUE, WebhookStore } from "@ess/store";
import { eventually } from "@ess/testing";
import { newRequestId, testSecretBox, useTestContext } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWebhooks, WEBHOOK_GROUP, type Webhooks } from "./webhooks.js";

// Deliveries under the default address policy: a receiver listens on 127.0.0.1, and nothing aimed at it
// (or at any other inward address) reaches it unless the allowlist opens it.
const ctx = useTestContext({ partitions: 2 });
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
const scheduler = new SchedulerStore(ctx.store);
const hooks = new WebhookStore(ctx.store, testSecretBox);
const connection = createRedis(ctx.url, "worker");

let server: Server;
let port: number;
const received: string[] = [];
/** the names the delivery connections asked the resolver for */
const resolved: string[] = [];
/** test DNS: every name below resolves to loopback, as a rebinding attacker's name would on the second query */
const DNS: Record<string, LookupAddress[]> = {
  "rebind.test": [{ address: "127.0.0.1", family: 4 }],
  "mixed.test": [
    { address: "93.184.216.34", family: 4 },
    { address: "10.0.0.7", family: 4 },
  ],
  "allowed.test": [{ address: "127.0.0.1", family: 4 }],
};
let webhooks: Webhooks;

beforeAll(async () => {
  server = createServer((req, res) => {
    received.push(req.url ?? "");
    req.resume();
    res.end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  port = (server.address() as AddressInfo).port;
  webhooks = startWebhooks({
    connection,
    store: ctx.store,
    partitions: [0, 1],
    webhooks: hooks,
    gapTimeoutMs: 30000,
    attempts: 3,
    backoffMs: 50,
    timeoutMs: 2000,
    concurrency: 4,
    log: quiet,
    consumer: "policy-test",
    deadLetters: ctx.deadLetters,
    // only the name allowed.test is opened; every default refusal stays
    policy: new WebhookAddressPolicy("allowed.test"),
    resolve: async (hostname) => {
      resolved.push(hostname);
      const answer = DNS[hostname];
      if (!answer) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: "ENOTFOUND" });
      return answer;
    },
  });
  await eventually(async () => {
    for (const p of [0, 1]) {
      const groups = (await ctx.redis.xinfo("GROUPS", ctx.keys.events(p)).catch(() => [])) as unknown[][];
      if (!groups.some((g) => g.includes(WEBHOOK_GROUP))) return false;
    }
    return true;
  });
});

afterAll(async () => {
  await webhooks.close();
  await connection.quit();
  await new Promise((r) => server.close(r));
});

/** Subscribes a fresh request to url (straight into the store: no gateway check), fires one event. */
async function deliverTo(url: string) {
  const id = newRequestId();
  await ctx.store.register(id, "h", {});
  await hooks.subscribe(id, url);
  await scheduler.cancel(id);
  return id;
}

async function deadLetterOf(id: string, url: string) {
  return eventually(async () => {
    const page = await ctx.deadLetters.list({ partition: ctx.keys.partition(id) });
    return page.items.find((e) => (e.payload as { url?: string }).url === url);
  });
}

describe("webhook deliveries under the default address policy", () => {
  it.each([
    ["127.0.0.1", () => `http://127.0.0.1:${port}/f`, "loopback", "127.0.0.1"],
    ["localhost", () => `http://localhost:${port}/f`, "loopback", "localhost"],
    ["[::1]", () => `http://[::1]:${port}/f`, "loopback", "::1"],
    ["0.0.0.0", () => `http://0.0.0.0:${port}/f`, "unspecified", "0.0.0.0"],
    ["169.254.169.254", () => "http://169.254.169.254/latest/meta-data/", "cloud metadata", "169.254.169.254"],
    [
      "metadata.google.internal",
      () => "http://metadata.google.internal/",
      "cloud metadata",
      "metadata.google.internal",
    ],
    ["10/8", () => "http://10.0.0.1/f", "private", "10.0.0.1"],
    ["192.168/16", () => "http://192.168.1.1/f", "private", "192.168.1.1"],
    ["2130706433", () => `http://2130706433:${port}/f`, "loopback", "127.0.0.1"],
    ["0x7f000001", () => `http://0x7f000001:${port}/f`, "loopback", "127.0.0.1"],
    ["127.1", () => `http://127.1:${port}/f`, "loopback", "127.0.0.1"],
    ["[::ffff:127.0.0.1]", () => `http://[::ffff:127.0.0.1]:${port}/f`, "loopback", "::ffff:7f00:1"],
  ])(
    "refuses %s at delivery: dead-lettered at once, naming the rule; nothing sent",
    async (_form, url, rule, target) => {
      const before = received.length;
      // a stored subscription that did not pass the gateway (written before the policy, or straight into Redis)
      const stored = `${url()}${newRequestId()}`;
      const id = await deliverTo(stored);
      const dead = await deadLetterOf(id, stored);
      expect(dead).toMatchObject({ queue: WEBHOOK_QUEUE, reason: "permanent-error", attempts: 1 });
      expect(dead.error).toContain(`${rule} `);
      expect(dead.error).toContain(`(${target}), refused by the webhook address policy`);
      expect(received.length).toBe(before);
    },
  );

  it("a name accepted at subscribe that resolves to loopback is refused at connect (DNS rebinding)", async () => {
    const url = `http://rebind.test:${port}/rebind/${newRequestId()}`;
    expect(new WebhookAddressPolicy().checkUrl(url)).toBeNull();
    const id = await deliverTo(url);
    const dead = await deadLetterOf(id, url);
    expect(resolved).toContain("rebind.test");
    expect(dead).toMatchObject({ reason: "permanent-error", attempts: 1 });
    expect(dead.error).toBe(
      "webhook target rebind.test resolves to a loopback address (127.0.0.1), refused by the webhook address policy",
    );
    expect(received.filter((r) => r.startsWith("/rebind/"))).toEqual([]);
  });

  it("a name with one inward address among public ones is refused", async () => {
    const url = `http://mixed.test:${port}/mixed/${newRequestId()}`;
    const dead = await deadLetterOf(await deliverTo(url), url);
    expect(dead.error).toContain("resolves to a private address (10.0.0.7)");
  });

  it("an allowlisted name is delivered to the very address the lookup hook returned", async () => {
    const path = `/allowed/${newRequestId()}`;
    await deliverTo(`http://allowed.test:${port}${path}`);
    await eventually(async () => received.includes(path));
  });
});
