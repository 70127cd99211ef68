import type { AddressInfo } from "node:net";
import { newRequestId } from "@ess/testing/context";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createApp } from "./app.js";
import { Authenticator } from "./auth/authenticator.js";
import { serveApp } from "./server.js";
import { useGatewayTestContext } from "./test-context.js";

// 200 concurrent wrong Basic passwords over a real socket while valid callers keep calling.

const ctx = await useGatewayTestContext();
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const TOKEN = "a-scheduler-token-that-is-long-enough";
let auth: Authenticator;
const errors: unknown[] = [];
let server: ReturnType<typeof serveApp>;
let base = "";
let id = "";

beforeAll(async () => {
  auth = await Authenticator.fromConfig({
    AUTH_USERS: "fleet:scheduler:fleet-password,batch:scheduler:batch-password",
    AUTH_TOKENS: `sched:scheduler:${TOKEN}`,
    ALLOW_ANONYMOUS: false,
  });
  const app = createApp({ ...ctx.deps, ops: { auth, retryAfterSeconds: 1 } });
  server = serveApp({
    fetch: app.fetch,
    port: 0,
    hostname: "127.0.0.1",
    timeouts: { headersTimeoutMs: 10000, requestTimeoutMs: 30000, keepAliveTimeoutMs: 5000 },
    logError: (err) => errors.push(err),
  });
  await new Promise<void>((resolve) => server.once("listening", () => resolve()));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  id = newRequestId();
  await ctx.store.register(id, "h".repeat(24), {});
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

async function timed(authorization: string): Promise<{ status: number; ms: number; retryAfter: string | null }> {
  const start = performance.now();
  const res = await fetch(`${base}/ess/rest/scheduler/v1/requests/${id}`, { headers: { authorization } });
  await res.arrayBuffer();
  return { status: res.status, ms: performance.now() - start, retryAfter: res.headers.get("retry-after") };
}

const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))] ?? 0;

describe("bounded cost of bad credentials", () => {
  it("keeps valid callers served while 200 wrong passwords arrive at once", async () => {
    // the valid cached credential: verified once before the flood
    expect((await timed(basic("fleet", "fleet-password"))).status).toBe(200);

    let maxRunning = 0;
    let maxWaiting = 0;
    const sampler = setInterval(() => {
      maxRunning = Math.max(maxRunning, auth.passwordChecks.running);
      maxWaiting = Math.max(maxWaiting, auth.passwordChecks.waiting);
    }, 1);
    const floodStart = performance.now();
    // half for a configured user (its bucket), half for unknown names (the shared bucket), all distinct
    const flood = Array.from({ length: 200 }, (_, i) =>
      timed(basic(i % 2 === 0 ? "fleet" : `intruder${i}`, `wrong-${i}`)).then((r) => ({
        ...r,
        endedAt: performance.now() - floodStart,
      })),
    );
    // valid callers during the flood: cached Basic, bearer, and a first (uncached) Basic login of another user
    // the uncached login comes once the flood is queued (or 300 ms on), so it cannot simply run first
    for (let waited = 0; auth.passwordChecks.waiting < 30 && waited < 300; waited += 5) {
      await new Promise((r) => setTimeout(r, 5));
    }
    const cached: number[] = [];
    const bearer: number[] = [];
    const uncachedStart = performance.now() - floodStart;
    const uncached = timed(basic("batch", "batch-password"));
    for (let i = 0; i < 20; i++) {
      const [a, b] = await Promise.all([timed(basic("fleet", "fleet-password")), timed(`Bearer ${TOKEN}`)]);
      expect(a.status).toBe(200);
      expect(b.status).toBe(200);
      cached.push(a.ms);
      bearer.push(b.ms);
    }
    const login = await uncached;
    const wrong = await Promise.all(flood);
    clearInterval(sampler);

    const statuses = new Map<number, number>();
    for (const w of wrong) statuses.set(w.status, (statuses.get(w.status) ?? 0) + 1);
    const floodMs = Math.max(...wrong.map((w) => w.endedAt));
    console.log(
      `wrong passwords: ${JSON.stringify(Object.fromEntries(statuses))} in ${floodMs.toFixed(0)} ms; ` +
        `scrypt running max ${maxRunning}, waiting max ${maxWaiting}\n` +
        `valid cached Basic: p50 ${pct(cached, 0.5).toFixed(1)} ms, max ${Math.max(...cached).toFixed(1)} ms; ` +
        `bearer: p50 ${pct(bearer, 0.5).toFixed(1)} ms, max ${Math.max(...bearer).toFixed(1)} ms; ` +
        `uncached valid login: ${login.status} in ${login.ms.toFixed(0)} ms (started at ${uncachedStart.toFixed(0)} ms)`,
    );

    // every wrong credential is refused: 401, or 429 with Retry-After when the checks queue is full
    for (const w of wrong) {
      expect([401, 429]).toContain(w.status);
      if (w.status === 429) expect(w.retryAfter).toBe("1");
    }
    expect(errors).toEqual([]);
    // the scrypt work stayed bounded
    expect(maxRunning).toBeLessThanOrEqual(2);
    expect(maxWaiting).toBeLessThanOrEqual(64);
    // the uncached valid login got a fair slot: it is not refused, and it did not wait for the flood to drain
    expect(login.status).toBe(200);
    expect(login.ms).toBeLessThan(floodMs);
    // cached valid credentials never wait behind scrypt (generous bounds: the machine is shared and noisy,
    // and the flood's 200 connections are opened by this same process)
    expect(pct([...cached, ...bearer], 0.5)).toBeLessThan(250);
    expect(Math.max(...cached, ...bearer)).toBeLessThan(floodMs);
  });

  it("refuses a repeated wrong password from memory", async () => {
    const wrong = basic("fleet", "stale-password");
    const first = await Promise.all(Array.from({ length: 200 }, () => timed(wrong)));
    // one shared check: all 401, none refused for a full queue
    expect(first.map((r) => r.status)).toEqual(Array(200).fill(401));
    const again = await timed(wrong);
    expect(again.status).toBe(401);
    console.log(
      `200 identical wrong passwords: p50 ${pct(
        first.map((r) => r.ms),
        0.5,
      ).toFixed(0)} ms; repeated later: ${again.ms.toFixed(1)} ms`,
    );
  });
});
